"""DEPLOYMENT|SPEC arguments: a spec file, or the live spec of a deployment in a real SQLite store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from lockgate.cli.target import classify_target, resolve_spec
from lockgate.errors import NotFound, UserError
from lockgate.rollout.controller import initial_state
from lockgate.rollout.spec import load_spec
from lockgate.rollout.sqlstore import SqlStore

ROOT = Path(__file__).parents[2]
CANARY = ROOT / "examples" / "specs" / "canary.yaml"
Cli = Callable[..., tuple[int, str, str]]


@pytest.mark.parametrize(
    ("text", "is_file", "kind"),
    [
        ("churn", False, "deployment"),
        ("fraud-v2_a", False, "deployment"),
        ("canary.yaml", False, "spec"),
        ("specs/canary", False, "spec"),
        ("churn", True, "spec"),  # a file of that name exists: the file wins
    ],
)
def test_a_target_is_a_spec_or_a_deployment_name(text: str, is_file: bool, kind: str) -> None:
    assert classify_target(text, is_file=is_file).kind == kind


@pytest.mark.parametrize("text", ["Churn", "a b", "", "x" * 64])
def test_neither_a_file_nor_a_name_is_a_user_error(text: str) -> None:
    with pytest.raises(UserError, match="neither a spec file nor a deployment name"):
        classify_target(text, is_file=False)


@pytest.fixture
def live_store(tmp_path: Path) -> str:
    """A real store holding the example canary renamed, its 5% stage now 7%: not the file's spec."""
    data = yaml.safe_load(CANARY.read_text(encoding="utf-8"))
    data["name"] = "churn"
    data["strategy"]["steps"][0]["weight_percent"] = 7
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(data), encoding="utf-8")
    spec = load_spec(edited)
    url = f"sqlite:///{tmp_path / 'rollouts.db'}"
    store = SqlStore(url)
    store.create_deployment(spec, initial_state(spec), now=1.0)
    store.close()
    return url


def test_a_deployment_name_reads_the_live_spec_from_the_store(live_store: str) -> None:
    spec, store = resolve_spec("churn", live_store)
    assert store == live_store
    assert spec.name == "churn"
    assert "7" in str(spec.strategy)  # the stored spec, not the example file


def test_a_missing_deployment_names_those_there(live_store: str) -> None:
    expected = r"no deployment 'fraud' in the rollout store \(deployments there: churn\)"
    with pytest.raises(NotFound, match=expected):
        resolve_spec("fraud", live_store)


def test_a_missing_sqlite_store_is_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nowhere.db'}"
    with pytest.raises(NotFound, match="no rollout store at"):
        resolve_spec("churn", url)
    assert not (tmp_path / "nowhere.db").exists()


def test_a_missing_spec_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no spec file"):
        resolve_spec(str(tmp_path / "gone.yaml"), None)


def test_runbook_of_a_live_deployment(cli: Cli, live_store: str, lockgate_home: Path) -> None:
    code, out, err = cli("runbook", "churn", "--store", live_store, "--owner", "owner=ana")
    assert code == 0, err
    assert "churn" in out and "ana" in out
    assert "7%" in out  # the live stage, not the file's 5%


def test_runbook_of_an_unknown_deployment_exits_2(cli: Cli, lockgate_home: Path) -> None:
    code, _, err = cli("runbook", "nosuch")
    assert code == 2
    assert "no rollout store at" in err


def test_plan_cost_of_a_live_deployment(cli: Cli, live_store: str, lockgate_home: Path) -> None:
    args = ("--price", "2", "--traffic", "200/s", "--throughput", "50")
    code, out, err = cli("plan", "--cost", "churn", "--store", live_store, *args)
    assert code == 0, err
    assert "churn: rollout cost" in out


def test_checklist_of_a_live_deployment_reads_its_history_and_alert_rules(
    cli: Cli, live_store: str, lockgate_home: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "lockgate",
                        "rules": [
                            {
                                "alert": "LockgateRolledBack",
                                "expr": "lockgate_rollout_phase{phase='rolled_back'} == 1",
                            },
                            {"alert": "NodeDown", "expr": "up == 0"},
                            {"record": "lockgate:rate", "expr": "rate(lockgate_requests_total[1m])"},
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    code, out, err = cli("checklist", "churn", "--store", live_store, "--alert-rules", str(rules))
    assert code == 0, err
    assert "1 alerts: LockgateRolledBack" in out
    assert "NodeDown" not in out
    assert "none found" in out  # the store was read: no rehearsed rollback yet


def test_checklist_refuses_a_file_that_is_not_prometheus_rules(
    cli: Cli, lockgate_home: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "rules.yml"
    bad.write_text("alerts: []\n", encoding="utf-8")
    code, _, err = cli("checklist", str(CANARY), "--alert-rules", str(bad))
    assert code == 2
    assert "not a Prometheus rules file" in err


@pytest.mark.slow  # trains, registers and optimizes (~4 s)
def test_plan_cost_takes_the_candidates_measured_speedup_from_its_run(
    cli: Cli, mlflow_home: Path, trained_run: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    model = f"cost-{unique}"
    for throughput in (None, 300.0):  # version 1: a plain model; version 2: "optimized", 3x its parent
        run_id = trained_run()
        if throughput is not None:
            client = MlflowClient()
            client.log_metric(run_id, "throughput_per_s", throughput)
            client.log_metric(run_id, "parent_throughput_per_s", 100.0)
        assert cli("register", run_id, "--name", model)[0] == 0
    data = yaml.safe_load(CANARY.read_text(encoding="utf-8"))
    data["variants"] = {"stable": f"models:/{model}/1", "canary": f"models:/{model}/2"}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data), encoding="utf-8")
    args = ("--price", "2", "--traffic", "200/s", "--throughput", "50")
    code, out, err = cli("plan", "--cost", str(spec), *args)
    assert code == 0, err
    assert "candidate throughput 150 req/s" in " ".join(out.split())
    assert "the candidate needs 2 replicas at 150 req/s each (baseline 4)" in " ".join(out.split())


@pytest.mark.integration
def test_checklist_of_a_spec_file_reads_the_default_store(cli: Cli, lockgate_home: Path) -> None:
    """Issue 20: `checklist SPEC` ignored the default store, so a rehearsed rollback was 'left'."""
    from lockgate.cli.target import default_store
    from lockgate.rollout.controller import RecordEvent

    spec_path = Path(__file__).resolve().parents[2] / "examples" / "specs" / "canary.yaml"
    spec = load_spec(spec_path)
    lockgate_home.mkdir(parents=True, exist_ok=True)
    store = SqlStore(default_store())
    store.create_deployment(spec, initial_state(spec), now=1.0)
    store.append_events(
        spec.name, [RecordEvent(2.0, "bob", "rollback", "rehearsal", "stepping", "rolled_back")]
    )
    store.close()
    code, out, _ = cli("checklist", str(spec_path))
    assert code == 0
    [row] = [line for line in out.splitlines() if "rollback was rehearsed" in line]
    assert "done" in row, out
