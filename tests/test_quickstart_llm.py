"""``lockgate quickstart --llm`` end to end, as a person runs it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.integration
@pytest.mark.slow
def test_the_llm_quickstart_registers_serves_and_traces_a_language_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockgate.cli.main import main

    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "LOCKGATE_EXPERIMENT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LOCKGATE_HOME", str(tmp_path / "qs"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["quickstart", "--llm", "--home", str(tmp_path / "qs"), "--fresh"])
    out = capsys.readouterr().out
    assert info.value.code == 0, out
    assert "registered support-lm@1 as champion" in out
    assert "served models:/support-lm@champion (sha256 verified)" in out
    assert "2 generations recorded as MLflow traces" in out
    assert "language model: support-lm@1" in out
    assert not (tmp_path / "mlruns").exists(), "artifacts must stay under LOCKGATE_HOME"

    from lockgate.llm.traces import list_traces
    from lockgate.tracking.connection import connect

    rows = list_traces(connect(), "support-lm")
    assert {row.tags["model"] for row in rows} == {"support-lm/1"}
