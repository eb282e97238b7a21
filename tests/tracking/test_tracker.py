from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lockgate
from lockgate.errors import UserError
from lockgate.tracking.connection import connect
from lockgate.tracking.tracker import is_flush_due


@given(
    st.integers(0, 5000),
    st.floats(0, 100, allow_nan=False),
    st.integers(1, 1000),
    st.floats(0.01, 60, allow_nan=False),
)
def test_flush_rule(pending: int, age_s: float, max_pending: int, max_age_s: float) -> None:
    due = is_flush_due(pending, age_s, max_pending=max_pending, max_age_s=max_age_s)
    if pending >= max_pending:
        assert due
    elif pending == 0:
        assert not due
    else:
        assert due == (age_s >= max_age_s)


def test_outside_a_run_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no lockgate run is active"):
        lockgate.log_metric("x", 1.0)


def test_max_pending_over_mlflow_limit_is_refused() -> None:
    with pytest.raises(UserError, match="max_pending"):
        lockgate.track(max_pending=5000)


@pytest.mark.integration
def test_metrics_are_batched_and_all_stored(mlflow_home: Path) -> None:
    with lockgate.track(run_name="batched", params={"lr": 0.1}, max_pending=1000) as run:
        for step in range(2500):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        assert run.flushes == 2  # two full batches sent, 500 still buffered
    assert run.flushes == 3
    client = connect().client
    history = client.get_metric_history(run.run_id, "loss")
    assert len(history) == 2500
    assert sorted(m.step for m in history) == list(range(2500))
    stored = client.get_run(run.run_id)
    assert stored.data.params == {"lr": "0.1"}
    assert stored.info.status == "FINISHED"


@pytest.mark.integration
def test_time_bound_flush(mlflow_home: Path) -> None:
    now = [0.0]
    with lockgate.track(run_name="timed", max_age_s=5.0) as run:
        run.clock = lambda: now[0]
        run.log_metric("a", 1.0)
        assert run.flushes == 0
        now[0] = 6.0
        run.log_metric("a", 2.0, step=1)
        assert run.flushes == 1


@pytest.mark.integration
def test_provenance_is_recorded(mlflow_home: Path) -> None:
    with lockgate.track(run_name="prov") as run:
        pass
    stored = connect().client.get_run(run.run_id)
    tags = stored.data.tags
    for key in (
        "lockgate.git.commit",
        "lockgate.git.dirty",
        "lockgate.python",
        "lockgate.packages_sha256",
        "lockgate.host",
    ):
        assert key in tags, key
    artifacts = [a.path for a in connect().client.list_artifacts(run.run_id, "environment")]
    assert "environment/requirements.txt" in artifacts


@pytest.mark.integration
def test_decorator_and_module_functions(mlflow_home: Path) -> None:
    seen: list[str] = []

    @lockgate.track(run_name="decorated")
    def train(n: int) -> int:
        lockgate.log_params({"n": n})
        lockgate.log_metric("score", 0.5 * n)
        lockgate.log_metrics({"a": 1.0, "b": 2.0})
        seen.append(lockgate.active_run().run_id)
        return n * 2

    assert train(3) == 6
    assert train(4) == 8
    assert len(set(seen)) == 2  # a fresh run per call
    client = connect().client
    run = client.get_run(seen[1])
    assert run.data.metrics == {"score": 2.0, "a": 1.0, "b": 2.0}
    assert run.data.params == {"n": "4"}


@pytest.mark.integration
def test_failure_marks_the_run_failed_and_keeps_metrics(mlflow_home: Path) -> None:
    run_ids: list[str] = []

    def train() -> None:
        with lockgate.track(run_name="boom") as run:
            run_ids.append(run.run_id)
            run.log_metric("x", 1.0)
            raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        train()
    stored = connect().client.get_run(run_ids[0])
    assert stored.info.status == "FAILED"
    assert stored.data.metrics == {"x": 1.0}


@pytest.mark.integration
def test_dataset_path_is_linked_by_digest(mlflow_home: Path, tmp_path: Path, unique: str) -> None:
    from lockgate.tracking.datasets import snapshot

    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    version = snapshot(connect(), data, f"ds-{unique}")
    with lockgate.track(run_name="linked", datasets=[data]) as run:
        pass
    assert run.datasets[0].name == f"ds-{unique}"
    assert run.datasets[0].version == 1
    assert run.datasets[0].digest == version.digest
    stored = connect().client.get_run(run.run_id)
    inputs = stored.inputs.dataset_inputs
    assert [d.dataset.name for d in inputs] == [f"ds-{unique}"]
    assert inputs[0].dataset.digest == version.digest[:32]
