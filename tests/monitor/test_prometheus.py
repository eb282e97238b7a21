"""analysis.metrics against a real Prometheus (Debian's package) scraping a real lockgate."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lockgate.monitor.prometheus import PrometheusReader
from lockgate.rollout.spec import parse_spec
from lockgate.rollout.sqlstore import SqlStore
from lockgate.serving.server import build_app, build_deployments, run_server_in_thread
from tests.serving.conformance import command, deploy, gateway_config, history_of, spec_for, status_of
from tests.serving.conftest import logged_model, models  # noqa: F401 (fixtures)
from tests.support import free_port


def test_a_prometheus_that_is_not_there_gives_no_number() -> None:
    reader = PrometheusReader("http://127.0.0.1:9", timeout_s=0.5)
    assert reader.query("up") is None and reader.failed == 1


@pytest.mark.integration
def test_a_query_per_variant_on_a_real_prometheus_rolls_a_canary_back(
    tmp_path: Path,
    models: dict[str, Path],  # noqa: F811 (the fixture imported above)
) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    prometheus_port = free_port()
    config = gateway_config(prometheus_url=f"http://127.0.0.1:{prometheus_port}")
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    handle = run_server_in_thread(build_app(config=config, deployments=build_deployments(config, store)))
    target = handle.url.split("//", 1)[1]
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: lockgate, static_configs: [{{targets: ['{target}']}}]}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = handle.url
        steps = [{"weight_percent": 10, "min_requests": 10**9}]  # a stage that never ends by itself
        spec = spec_for("scraped", models, "weak", {"type": "canary", "steps": steps})
        share = 'lockgate_rollout_weight_ratio{deployment="{{deployment}}",variant="{{variant}}"}'
        spec["analysis"] = {
            "policy": "threshold",
            "min_requests": 10**9,  # the policy never decides here: only the metric can
            "metrics": [
                {
                    "name": "share",
                    "query": share,
                    "max": 0.05,
                }
            ],
        }
        deploy(url, spec)
        command(url, "scraped", "start")
        deadline = time.monotonic() + 60
        while status_of(url, "scraped")["phase"] == "stepping" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status_of(url, "scraped")["phase"] == "rolled_back", (tmp_path / "prometheus.log").read_text()[
            -2000:
        ]
        [event] = [e for e in history_of(url, "scraped") if e["action"] == "rollback"]
        assert event["actor"] == "controller"
        assert "share of the candidate is 0.1, above its max 0.05" in event["reason"]
        # each variant's query is templated with its own labels. The controller's look records what
        # answered within the reader's timeout (a query that times out on a busy machine gives no
        # number, by design), so the stable variant's number is checked where it was recorded, and
        # its query is checked directly: after the rollback it reads the stable variant's full share.
        assert event["numbers"]["metric_share_next"] == 0.1
        assert event["numbers"].get("metric_share_stable", 0.9) == 0.9
        reader = PrometheusReader(f"http://127.0.0.1:{prometheus_port}", timeout_s=30)
        wanted = {"stable": 1.0, "next": 0.0}
        deadline = time.monotonic() + 60
        while (shares := dict(reader.values(parse_spec(spec)).get("share", {}))) != wanted:
            assert time.monotonic() < deadline, shares
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        handle.stop()
        store.close()
