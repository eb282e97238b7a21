"""deploy/monitoring/ is checked by the tools that read it, against the metrics lockgate exports.

- prometheus.yml: ``promtool check config`` (which also checks the rule files it names).
- alert-rules.yml: ``promtool check rules``, and ``promtool test rules alert-rules.test.yml`` (each
  alert fires on the series that should raise it, and not before its ``for``).
- grafana/dashboards/lockgate.json: every PromQL expression (panels, variables, annotations), with
  Grafana's variables filled in, written into a temporary rules file for ``promtool check rules``;
  the panels the dashboard must have.
- Every lockgate metric the dashboard and the rules use is one a real server exports (scraped from
  a server with deployments, live drift and alerts on).

promtool is Debian's ``prometheus`` package, installed by ``scripts/install-promtool`` when missing;
the promtool tests skip, saying why, only when that is impossible (not root, or no apt-get).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.support import AUTH, TOKEN

ROOT = Path(__file__).parents[1]
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "lockgate.json"
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
# series Prometheus itself makes, not lockgate
PROMETHEUS_OWN = {"up", "ALERTS"}


@pytest.fixture(scope="module")
def promtool() -> str:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-promtool")], capture_output=True, text=True, timeout=600
    )
    if result.returncode == 3:
        pytest.skip(f"promtool is missing and cannot be installed here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def _promtool(promtool: str, *args: str, cwd: Path = MONITORING) -> str:
    result = subprocess.run([promtool, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _grafana_expressions() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets, variable queries, annotations."""
    dashboard = _dashboard()
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.+), *\w+\)", variable["query"]["query"])
            assert inner, variable["query"]
            found.append(inner.group(1))
    found += [a["expr"] for a in dashboard["annotations"]["list"]]
    return found


def _as_promql(expr: str) -> str:
    """Grafana's variables replaced the way Grafana would (All: the regex .*)."""
    for name in ("deployment", "variant"):
        expr = expr.replace(f"${name}", ".*")
    return expr.replace("$__rate_interval", "1m")


def test_promtool_accepts_the_scrape_config_and_its_rules(promtool: str) -> None:
    out = _promtool(promtool, "check", "config", "prometheus.yml")
    assert "1 rule files found" in out


def test_promtool_accepts_the_alert_rules(promtool: str) -> None:
    out = _promtool(promtool, "check", "rules", "alert-rules.yml")
    assert "SUCCESS" in out


def test_the_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    out = _promtool(promtool, "test", "rules", "alert-rules.test.yml")
    assert "SUCCESS" in out


def test_the_alert_rules_cover_rollbacks_halts_drift_guardrails_and_targets() -> None:
    rules = yaml.safe_load((MONITORING / "alert-rules.yml").read_text(encoding="utf-8"))
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert names >= {
        "LockgateRolledBack",
        "LockgateSampleRatioHalt",
        "LockgateInputDrift",
        "LockgatePredictionDrift",
        "LockgateEmbeddingDrift",
        "LockgateHighErrorRate",
        "LockgateHighLatency",
        "LockgateTargetDown",
    }
    tests = yaml.safe_load((MONITORING / "alert-rules.test.yml").read_text(encoding="utf-8"))
    tested = {case["alertname"] for t in tests["tests"] for case in t["alert_rule_test"]}
    assert tested == names, "every alert has a unit test"


def test_every_dashboard_expression_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    expressions = _grafana_expressions()
    rules = {
        "groups": [
            {
                "name": "grafana-dashboard",
                "rules": [
                    {"record": f"lockgate_dashboard:expr_{i}", "expr": _as_promql(e)}
                    for i, e in enumerate(expressions)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    out = _promtool(promtool, "check", "rules", str(path))
    assert f"SUCCESS: {len(expressions)} rules found" in out


def test_the_dashboard_shows_each_part_per_deployment_and_variant() -> None:
    dashboard = _dashboard()
    titles = {p["title"] for p in dashboard["panels"]}
    assert titles >= {
        "Request rate",
        "Error rate",
        "Latency p50 and p99",
        "Batch size",
        "Queue depth",
        "Rollout weights",
        "Phase",
        "Verdict",
        "Shadow agreement",
        "Input drift: PSI per feature",
        "Input drift: Jensen-Shannon per feature",
        "Prediction drift",
        "Embedding drift",
        "Alerts",
    }
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "deployment", "variant"}
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"] and all(t["refId"] for t in panel["targets"])
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(set(ids)) == len(ids)


def test_compose_runs_prometheus_and_grafana_on_these_files() -> None:
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    prometheus = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    assert prometheus["/etc/prometheus/prometheus.yml"] == "../monitoring/prometheus.yml"
    assert prometheus["/etc/prometheus/alert-rules.yml"] == "../monitoring/alert-rules.yml"
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alert-rules.yml"]  # beside prometheus.yml here and in the container
    scrape = config["scrape_configs"][0]
    assert (
        scrape["static_configs"][0]["targets"] == ["lockgate:8080"] and scrape["metrics_path"] == "/metrics"
    )
    grafana = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    provider = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "dashboards.yml").read_text())
    assert grafana[provider["providers"][0]["options"]["path"]] == "../monitoring/grafana/dashboards"
    sources = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "datasources.yml").read_text())
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"


# ------------------------------------------------------------------ against a real server


def _lockgate_metric_names(text: str) -> set[str]:
    return set(re.findall(r"\blockgate_[a-z_]+\b", text))


def _used_metrics() -> set[str]:
    used = set()
    for expr in _grafana_expressions():
        used |= _lockgate_metric_names(expr)
    used |= _lockgate_metric_names((MONITORING / "alert-rules.yml").read_text(encoding="utf-8"))
    used |= _lockgate_metric_names((MONITORING / "alert-rules.test.yml").read_text(encoding="utf-8"))
    return used


def _exported(metrics: str) -> set[str]:
    """Sample names a scrape can hold: each family's, with its type's suffixes."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics, flags=re.MULTILINE):
        if kind == "counter":  # the text format names a counter's family by its sample, _total
            names.add(name if name.endswith("_total") else name + "_total")
        elif kind == "histogram":
            names |= {name + suffix for suffix in ("_bucket", "_sum", "_count")}
        else:
            names.add(name)
    return names


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Any]:
    from lockgate.monitor.alerts import WebhookSender
    from lockgate.monitor.reference import reference_from_frame
    from lockgate.rollout.policy import policy_for
    from lockgate.rollout.sqlstore import SqlStore
    from lockgate.serving.deployment import DeploymentManager
    from lockgate.serving.predictor import FunctionPredictor, column_signature
    from lockgate.serving.server import ServeConfig, build_app, run_server_in_thread
    from lockgate.serving.variant import Variant

    def load(deployment: str, variant: str, uri: str) -> Variant:
        predictor = FunctionPredictor(lambda x: (x[:, 0] > 0).astype(np.int64), column_signature(["x", "y"]))
        return Variant(variant, "1", predictor, key=f"{deployment}/{variant}")

    rng = np.random.default_rng(5)
    train = pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500)})
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    manager = DeploymentManager(
        store,
        load=load,
        policy_for=policy_for,
        tick_s=0.05,
        alerts=WebhookSender("http://127.0.0.1:9/never-called"),
        drift_reference=reference_from_frame(train, dataset="train@1", digest="d"),
        drift_sample_every=1,
    )
    config = ServeConfig("", admin_token=TOKEN, tick_s=0.05, follow_registry=False)
    handle = run_server_in_thread(build_app(config=config, deployments=manager))
    yield handle
    handle.stop()
    store.close()


@pytest.mark.integration
def test_every_metric_the_dashboard_and_rules_use_is_exported(gateway: Any) -> None:
    url = gateway.url
    spec = {
        "name": "churn",
        "variants": {"stable": "fn:a", "next": "fn:b"},
        "baseline": "stable",
        "candidate": "next",
        "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 1_000_000}]},
    }
    assert httpx.put(f"{url}/admin/deployments/churn", json=spec, headers=AUTH, timeout=30).status_code == 201
    assert httpx.post(f"{url}/admin/deployments/churn/start", json={}, headers=AUTH).status_code == 200
    with httpx.Client(timeout=30) as client:
        for i in range(20):
            body = {"dataframe_split": {"columns": ["x", "y"], "data": [[0.1 * i - 1, 0.0]]}}
            assert client.post(f"{url}/invocations", json=body).status_code == 200
    metrics = httpx.get(f"{url}/metrics").text
    used = _used_metrics()
    assert len(used) >= 15
    missing = sorted(used - _exported(metrics))
    assert not missing, f"used in deploy/monitoring but not exported: {missing}"
    assert not (_used_metrics() & PROMETHEUS_OWN)


def test_the_checklist_counts_these_rules_as_alerts_on_lockgate_metrics() -> None:
    from lockgate.cli.checklist import read_alert_rules

    found = read_alert_rules([MONITORING / "alert-rules.yml"])
    assert "LockgateRolledBack" in found and "LockgateHighErrorRate" in found and len(found) >= 8
