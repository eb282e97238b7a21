"""The rest of lockgate's MLflow commands against the team server over HTTP (issue 18).

``tests/tracking/test_team.py`` covers register, the auth failures, an outage mid-run, ``team
init``, ``info`` and ``data pull``; this file the other commands that talk to MLflow: lineage, runs
compare and diff, reproduce, validate (with its provenance checks), optimize, prompts, ``lockgate
serve models:/…@champion`` as its own process, and a rollout whose promotion moves the champion
alias on the server. Each runs as a teammate would: alice makes things, bob (READ by default)
reads and serves them.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import httpx
import pandas as pd
import pytest

import lockgate
from lockgate.tracking.connection import connect
from lockgate.tracking.registry import get_model_version, register
from lockgate.tracking.server import TrackingServer
from tests.support import AUTH, TOKEN, start_server

pytestmark = pytest.mark.integration

TeamUser = Callable[[str | None], TrackingServer]
Cli = Callable[..., tuple[int, str, str]]
ROOT = Path(__file__).resolve().parents[2]


def _breast_cancer_csv(path: Path) -> Path:
    """The rows ``trained_run`` trains on, as a CSV with a ``target`` column."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame["target"] = y
    frame.to_csv(path, index=False)
    return path


def _rows(n: int) -> list[list[float]]:
    from sklearn.datasets import load_breast_cancer

    x, _ = load_breast_cancer(return_X_y=True)
    return [[float(v) for v in row] for row in x[:n]]


def test_lineage_runs_compare_diff_and_reproduce_read_a_teammates_work(
    team_user: TeamUser, cli: Cli, trained_run: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    team_user("alice")
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    code, _, err = cli("data", "snapshot", str(data), "--name", f"d-{unique}")
    assert code == 0, err
    first = trained_run("lr-C1", c=1.0, datasets=(f"d-{unique}@1",))
    with lockgate.track(run_name="lr-C0.01", params={"C": 0.01}, capture_env=False) as run:
        run.log_metric("accuracy", 0.9)  # a second run to compare with; no model needed
    second = run.run_id
    code, out, err = cli("register", first, "--name", f"m-{unique}", "--alias", "champion")
    assert code == 0 and f"m-{unique}@1" in out, err

    team_user("bob")  # a teammate with the default READ
    code, out, err = cli("lineage", f"m-{unique}@champion")
    assert code == 0, err
    assert f"d-{unique}@1" in out and first[:8] in out and "this version" in out
    code, out, err = cli("runs", "list", "--limit", "5")
    assert code == 0 and first[:8] in out and second[:8] in out, err
    code, out, err = cli("runs", "compare", first, second, "--format", "json")
    assert code == 0, err
    rows = {(row["kind"], row["key"]): row for row in json.loads(out)["rows"]}
    assert ("metric", "accuracy") in rows and rows[("param", "C")]["changed"]
    code, out, err = cli("runs", "diff", first, second)
    assert code == 0 and "params" in out and "C" in out, err
    code, out, err = cli("reproduce", first)
    assert code == 0 and "matches the recorded digests" in out, err


def _load_example() -> ModuleType:
    path = ROOT / "examples" / "breast_cancer" / "train.py"
    spec = importlib.util.spec_from_file_location("lockgate_team_example_train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=alice", "-c", "user.email=alice@example.com"]
    subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True)


def test_validate_gates_a_version_with_its_provenance_and_records_the_verdict(
    team_user: TeamUser, cli: Cli, tmp_path: Path, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockgate.gates.gate import TAG_VERDICT

    team_user("alice")
    repo = tmp_path / "repo"  # the training code's checkout: committed and clean, for provenance
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "train")
    monkeypatch.chdir(repo)
    example = _load_example()
    data = tmp_path / "data"
    train_ref, holdout_ref = example.snapshot_data(data, prefix=f"t{unique}-")
    name = f"bc-{unique}"
    example.train_and_register(train_ref, data / "train.csv", name=name, alias="champion")
    candidate = example.train_and_register(train_ref, data / "train.csv", name=name)
    policy = tmp_path / "lockgate.yaml"
    text = (ROOT / "examples" / "breast_cancer" / "lockgate.yaml").read_text()
    text = text.replace("breast-cancer-holdout@1", holdout_ref)
    text = text.replace("latency_p95_ms: 50 ", "latency_p95_ms: 60000\n    requests: 20\n    repeats: 1 ")
    text = text.replace("resamples: 1000", "resamples: 200")
    policy.write_text(text)

    code, out, err = cli("validate", candidate, "--policy", str(policy), "--json", str(tmp_path / "g.json"))
    assert code == 0, out + err
    assert "PASS" in out
    checks = {c["name"]: c for c in json.loads((tmp_path / "g.json").read_text())["checks"]}
    assert checks["provenance"]["status"] == "passed", checks["provenance"]
    assert checks["champion accuracy (mcnemar)"]["status"] == "passed"
    version = get_model_version(connect(), candidate)
    assert version.tags[TAG_VERDICT] == "pass"
    # the report went to the version's run, in the server's artifact store
    assert [a.path for a in connect().client.list_artifacts(version.run_id, "gates")]

    # bob may check it (READ), but recording the verdict needs EDIT on the model
    team_user("bob")
    provenance_only = tmp_path / "provenance.yaml"
    provenance_only.write_text(
        f"version: 1\nholdout: {{dataset: {holdout_ref}, target: target}}\n"
        "checks:\n  provenance: {require_commit: true, require_clean: true, require_datasets: true}\n"
    )
    code, out, err = cli("validate", candidate, "--policy", str(provenance_only))
    assert code == 2, out + err
    assert "PASS" not in out and "provenance" in out  # the checks ran, and are shown
    refused = f"user 'bob' may not record the gate's verdict on registered model '{name}'"
    assert refused in err and "--no-record" in err and "Traceback" not in err


def test_optimize_registers_a_child_version_with_its_lineage(
    team_user: TeamUser,
    cli: Cli,
    trained_run: Callable[..., str],
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tempfile

    from lockgate.serving.source import resolve_source

    team_user("alice")
    data = _breast_cancer_csv(tmp_path / "cancer.csv")
    parent = register(connect(), trained_run(datasets=(str(data),)), f"opt-{unique}")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    code, out, err = cli("optimize", parent.ref, "--method", "onnx")
    assert code == 0, out + err
    assert f"registered opt-{unique}@2" in out
    assert not list(scratch.glob("lockgate-optimize-*")), "the parent's download and the candidate were left"
    child = get_model_version(connect(), f"opt-{unique}@2")
    assert (child.parent, child.method) == (f"opt-{unique}/1", "onnx")
    code, out, err = cli("lineage", f"opt-{unique}@2")
    assert code == 0 and f"opt-{unique}@1" in out and f"opt-{unique}@2" in out, err
    downloaded = resolve_source(f"models:/opt-{unique}/2", download_dir=tmp_path / "child")
    assert downloaded.is_verified and downloaded.sha256 == child.artifact_sha256


def test_prompts_register_list_show_and_alias(team_user: TeamUser, cli: Cli, unique: str) -> None:
    name = f"faq-{unique}"
    team_user("alice")
    code, out, err = cli(
        "prompts", "register", name, "--template", "Answer: {{question}}", "--alias", "champion"
    )
    assert code == 0 and f"registered prompt {name}@1" in out, err
    code, out, err = cli("prompts", "register", name, "--template", "Briefly: {{question}}", "-m", "shorter")
    assert code == 0 and f"{name}@2" in out, err
    code, out, err = cli("prompts", "alias", name, "champion", "2")
    assert code == 0, err
    team_user("bob")
    code, out, err = cli("prompts", "list", name)
    assert code == 0 and "shorter" in out and "champion" in out, err
    code, out, err = cli("prompts", "show", f"{name}@champion")
    assert code == 0 and f"prompt {name}@2" in out and "Briefly: {{question}}" in out, err
    # a prompt is a registered model to the server: changing alice's needs EDIT on it
    code, _, err = cli("prompts", "register", name, "--template", "Bob's: {{question}}")
    assert code == 2 and f"user 'bob' may not register a version of prompt '{name}'" in err, err
    code, _, err = cli("prompts", "alias", name, "champion", "1")
    assert code == 2 and f"user 'bob' may not set alias 'champion' of prompt '{name}'" in err, err
    assert f"EDIT on registered model '{name}'" in err and "Traceback" not in err


def test_a_teammate_serves_the_champion_downloaded_over_http_and_verified(
    team_user: TeamUser, trained_run: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    team_user("alice")
    name = f"srv-{unique}"
    run_id = trained_run()
    register(connect(), run_id, name)
    champion = register(connect(), run_id, name, alias="champion")  # version 2
    team_user("bob")  # READ is enough to serve
    tmp, log = tmp_path / "tmp", tmp_path / "serve.log"
    tmp.mkdir()
    # the server's temporary files under tmp, so the test sees what it leaves; INFO for the verified line
    server = start_server(
        [f"models:/{name}@champion"],
        token=None,
        env={"TMPDIR": str(tmp)},
        cwd=tmp_path,
        log_to=log,
        log_level=None,
    )
    try:
        answer = httpx.post(f"{server.url}/invocations", json={"inputs": _rows(2)}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 2
        assert (answer.headers["x-model-name"], answer.headers["x-model-version"]) == (name, "2")
        assert list(tmp.rglob("MLmodel")), "the model was not downloaded into the server's folder"
        assert server.stop(signal.SIGINT, timeout_s=30) == 0
    finally:
        server.stop(signal.SIGKILL)
    said = log.read_text()
    digest = str(champion.artifact_sha256)
    assert f"verified models:/{name}@champion (version 2) sha256 {digest[:12]}" in said, said
    assert not list(tmp.rglob("MLmodel")), "the downloaded model was left behind"


def _canary_of_versions_1_and_2(model: str) -> dict[str, object]:
    """A canary of ``model``'s version 2 behind version 1 whose one stage never ends by itself."""
    return {
        "name": "churn",
        "variants": {"stable": f"models:/{model}/1", "next": f"models:/{model}/2"},
        "baseline": "stable",
        "candidate": "next",
        "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 1_000_000}]},
    }


def test_a_rollouts_promotion_moves_the_champion_alias_on_the_server(
    team_user: TeamUser, cli: Cli, trained_run: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    from lockgate.rollout.sqlstore import SqlStore
    from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread

    team_user("alice")
    name = f"roll-{unique}"
    run_id = trained_run()  # two versions of one run: the rollout is about the versions
    register(connect(), run_id, name, alias="champion")
    register(connect(), run_id, name)
    token, auth = TOKEN, AUTH
    config = ServeConfig("", admin_token=token, tick_s=0.05)
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    spec = _canary_of_versions_1_and_2(name)
    try:
        with run_server_in_thread(
            build_app(config=config, deployments=build_deployments(config, store))
        ) as handle:
            url = handle.url
            put = httpx.put(f"{url}/admin/deployments/churn", json=spec, headers=auth, timeout=60)
            assert put.status_code == 201, put.text
            code, out, err = cli("rollout", "start", "churn", "--url", url, "--token", token)
            assert code == 0, out + err
            with httpx.Client(base_url=url, timeout=30) as client:
                versions = {
                    client.post(
                        "/invocations", json={"inputs": _rows(1)}, headers={"x-routing-key": f"user-{i}"}
                    ).headers["x-model-version"]
                    for i in range(40)
                }
            assert versions == {"1", "2"}
            code, out, err = cli(
                "rollout", "promote", "churn", "--url", url, "--token", token, "--reason", "ok"
            )
            assert code == 0, out + err
            deadline = time.monotonic() + 10
            while (
                time.monotonic() < deadline and get_model_version(connect(), f"{name}@champion").version != 2
            ):
                time.sleep(0.05)
            history = httpx.get(f"{url}/admin/deployments/churn/history", headers=auth).json()["events"]
    finally:
        store.close()
    assert get_model_version(connect(), f"{name}@champion").version == 2
    moved = [event for event in history if event["action"] == "champion"]
    assert moved and moved[-1]["numbers"] == {"from_version": 1.0, "to_version": 2.0}, history
    # what every teammate sees
    team_user("bob")
    assert get_model_version(connect(), f"{name}@champion").version == 2


def test_a_server_that_may_not_move_the_alias_promotes_and_says_why_not(
    team_user: TeamUser, cli: Cli, trained_run: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    from lockgate.rollout.sqlstore import SqlStore
    from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread

    team_user("alice")
    name = f"roll-{unique}"
    run_id = trained_run()  # two versions of one run: the rollout is about the versions
    register(connect(), run_id, name, alias="champion")
    register(connect(), run_id, name)
    team_user("bob")  # the server runs as bob, who has READ on alice's model
    token, auth = TOKEN, AUTH
    config = ServeConfig("", admin_token=token, tick_s=0.05)
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    spec = _canary_of_versions_1_and_2(name)
    try:
        app = build_app(config=config, deployments=build_deployments(config, store))
        with run_server_in_thread(app) as handle:
            url = handle.url
            put = httpx.put(f"{url}/admin/deployments/churn", json=spec, headers=auth, timeout=60)
            assert put.status_code == 201, put.text
            assert cli("rollout", "start", "churn", "--url", url, "--token", token)[0] == 0
            code, out, err = cli("rollout", "promote", "churn", "--url", url, "--token", token)
            assert code == 0, out + err
            status = httpx.get(f"{url}/admin/deployments/churn", headers=auth).json()
            history = httpx.get(f"{url}/admin/deployments/churn/history", headers=auth).json()["events"]
    finally:
        store.close()
    assert status["phase"] == "promoted"  # the rollout's decision stands
    assert get_model_version(connect(), f"{name}@champion").version == 1
    said = history[-1]
    assert said["action"] == "champion" and "champion alias was not moved" in said["reason"], history
    assert f"user 'bob' may not move alias 'champion' of registered model '{name}'" in said["reason"]
