"""Retraining on drift: the pure cooldown decision, and a real pipeline run as a subprocess."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lockgate.errors import UserError
from lockgate.monitor.retrain import RetrainTrigger, retrain_refusal
from lockgate.serving.server import ServeConfig

PIPELINE = """\
version: 1
lock: build/pipeline.lock
stages:
  retrain:
    cmd: python -c "open('build/model.txt', 'w').write('retrained')"
    outs: [build/model.txt]
"""


def write_pipeline(folder: Path, text: str = PIPELINE) -> Path:
    (folder / "build").mkdir(exist_ok=True)
    path = folder / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_one_run_at_a_time_and_one_per_cooldown() -> None:
    assert retrain_refusal(is_running=False, last_started_at=None, now=10.0, cooldown_s=60.0) is None
    assert "still going" in str(
        retrain_refusal(is_running=True, last_started_at=None, now=10.0, cooldown_s=60)
    )
    refusal = retrain_refusal(is_running=False, last_started_at=100.0, now=130.0, cooldown_s=60.0)
    assert refusal is not None and "30 s ago" in refusal and "30 s left" in refusal
    assert retrain_refusal(is_running=False, last_started_at=100.0, now=160.0, cooldown_s=60.0) is None


def test_the_trigger_runs_lockgate_pipeline_run(tmp_path: Path) -> None:
    trigger = RetrainTrigger(write_pipeline(tmp_path), cooldown_s=3600)
    finished = threading.Event()
    results: list[tuple[int, float]] = []

    def done(code: int, duration_s: float) -> None:
        results.append((code, duration_s))
        finished.set()

    assert trigger.refusal(1000.0) is None
    trigger.start(1000.0, done)
    assert finished.wait(120)
    assert results[0][0] == 0
    assert (tmp_path / "build" / "model.txt").read_text() == "retrained"
    assert (tmp_path / "build" / "pipeline.lock").is_file()
    assert trigger.runs == 1 and "cooldown" in str(trigger.refusal(1010.0))


def test_a_failing_pipeline_reports_its_exit_code(tmp_path: Path) -> None:
    failing = PIPELINE.replace("open('build/model.txt', 'w').write('retrained')", "raise SystemExit(3)")
    trigger = RetrainTrigger(write_pipeline(tmp_path, failing))
    codes: list[int] = []
    trigger.start(0.0, lambda code, _: codes.append(code))
    trigger.join(120)
    assert codes == [1]  # lockgate pipeline run exits 1 when a stage fails


def test_a_missing_pipeline_or_no_drift_reference_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        RetrainTrigger(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="cooldown"):
        RetrainTrigger(write_pipeline(tmp_path), cooldown_s=-1)
    with pytest.raises(UserError, match="needs --drift-reference"):
        ServeConfig("", retrain_pipeline=str(tmp_path / "pipeline.yaml"))
