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
    assert "support-answer@2 passes the generation gate against the champion prompt support-answer@1" in out
    assert "promoted: stage 1 of 1 passed (primary is better" in out, out
    assert "language model: support-lm@1" in out
    assert not (tmp_path / "mlruns").exists(), "artifacts must stay under LOCKGATE_HOME"

    from lockgate.llm.traces import list_traces
    from lockgate.tracking.connection import connect

    rows = list_traces(connect(), "support-lm")
    assert {row.tags["model"] for row in rows} == {"support-lm/1"}


def test_the_examples_folder_holds_what_the_quickstart_runs() -> None:
    """examples/llm/ is what a person copies; the quickstart embeds the same (it runs installed)."""
    from lockgate import quickstart_llm as q

    folder = Path(__file__).parents[1] / "examples" / "llm"
    assert (folder / "prompts" / "v1.txt").read_text() == q.PROMPT_V1
    assert (folder / "prompts" / "v2.txt").read_text() == q.PROMPT_V2
    assert (folder / "eval.jsonl").read_text().splitlines() == q.eval_lines()
    policy = "\n".join(
        line.split("#")[0].rstrip() for line in (folder / "gate.yaml").read_text().splitlines()
    )
    import yaml

    assert yaml.safe_load(policy) == yaml.safe_load(q.GATE_POLICY)
