"""``lockgate rollout ...`` as a person and a CI log see it: what the status says once a rollout
has ended, and ``--watch`` without a terminal."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lockgate.cli.rollout import render_status, status_line
from tests.serving.conformance import TOKEN, command, deploy, embedded_gateway, spec_for
from tests.serving.conftest import logged_model, models  # noqa: F401 (fixtures)


def a_status(phase: str, decision: str) -> dict[str, Any]:
    variant = {
        "model_name": "churn",
        "model_version": "4",
        "weight_percent": 0.0,
        "requests": 10,
        "errors": 0,
        "error_rate": 0.0,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
    }
    return {
        "name": "churn",
        "strategy": "canary",
        "phase": phase,
        "stage": 1,
        "reason": "rolled back by hand",
        "baseline": "stable",
        "candidate": "canary",
        "variants": {"stable": {**variant, "weight_percent": 100.0}, "canary": variant},
        "verdict": {"decision": decision, "reasons": ["errors non-inferior"], "numbers": {}},
    }


def rendered(status: dict[str, Any]) -> str:
    console = Console(width=200, record=True)
    console.print(render_status(status))
    return console.export_text()


def test_a_finished_rollout_does_not_show_the_last_verdict_as_its_verdict() -> None:
    """Rolled back by hand after the policy said promote: the view must not say "verdict: promote"."""
    text = rendered(a_status("rolled_back", "promote"))
    assert "verdict: promote" not in text.replace("last verdict before it was rolled back: promote", "")
    assert "last verdict before it was rolled back: promote" in text
    assert "verdict: continue" in rendered(a_status("stepping", "continue"))


def test_the_view_says_how_long_a_switch_back_stays_instant_and_when_a_pause_ends() -> None:
    status = a_status("promoted", "promote")
    status["variants"]["stable"]["retire_at"] = time.time() + 600
    text = rendered(status)
    assert "stable stays loaded until" in text and "lockgate rollout rollback churn" in text
    paused = {**a_status("paused", "continue"), "paused_until": time.time() + 60}
    assert "paused until" in rendered(paused) and "paused until" not in text


def test_the_view_lists_the_llm_metrics_of_generative_variants() -> None:
    assert "LLM" not in rendered(a_status("experimenting", "continue"))
    status = a_status("experimenting", "continue")
    status["variants"]["canary"]["llm"] = {
        "ttft_ms": 41.5,
        "cost_per_1k_tokens": 0.002,
        "empty_answer_rate": 0.125,
    }
    text = rendered(status)
    assert "LLM" in text and "ttft p50 ms" in text and "cost/1k tok" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("canary") and "41.5" in line)
    assert "0.002" in row and "12.50%" in row and "-" in row  # a metric with no data yet is "-"


def test_a_status_line_names_phase_weights_verdict_and_requests() -> None:
    line = status_line(a_status("stepping", "continue"))
    assert "churn stepping stage 1" in line
    assert "weights stable 100%, canary 0%" in line and "verdict continue" in line
    assert "requests stable 10, canary 10" in line and "\n" not in line


@pytest.mark.integration
def test_watch_without_a_terminal_prints_a_line_per_change(
    tmp_path: Path,
    models: dict[str, Path],  # noqa: F811 (the fixture imported above)
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lockgate.cli.main import main

    strategy = {"type": "canary", "steps": [{"weight_percent": 10, "min_requests": 10**9}]}
    with embedded_gateway(tmp_path) as gateway:
        url = gateway.url
        deploy(url, spec_for("watched", models, "weak", strategy))
        command(url, "watched", "start")
        args = [
            "rollout",
            "status",
            "watched",
            "--watch",
            "--interval",
            "0.05",
            "--url",
            url,
            "--token",
            TOKEN,
        ]
        exits: list[object] = []

        def watch() -> None:
            try:
                main(args)
            except SystemExit as exc:
                exits.append(exc.code)

        watcher = threading.Thread(target=watch)
        watcher.start()
        for verb in ("pause", "resume", "rollback"):
            time.sleep(0.5)
            command(url, "watched", verb)
        watcher.join(timeout=30)
        assert not watcher.is_alive()
    assert exits in ([], [0])
    lines = capsys.readouterr().out.splitlines()
    phases = [line.split()[2] for line in lines]
    # a line for each change (the verdict's first look is one too), not one per poll
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == [
        "stepping",
        "paused",
        "stepping",
        "rolled_back",
    ], lines
    assert len(lines) <= 6, lines


def test_deploy_warns_about_a_stage_shorter_than_the_policys_minimum(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "canary.yaml"
    spec.write_text(
        "name: churn\n"
        "variants: {stable: models:/churn/3, canary: models:/churn/4}\n"
        "baseline: stable\ncandidate: canary\n"
        "strategy: {type: canary, steps: [{weight_percent: 5, min_requests: 100}, {weight_percent: 50}]}\n"
    )
    monkeypatch.setenv("LOCKGATE_ADMIN_TOKEN", "t")
    # no server on this port: the warning comes first, from the spec alone
    code, _, err = cli("deploy", str(spec), "--url", "http://127.0.0.1:9")
    assert code == 3  # the server is down: an outage (exit 3); the warning came first
    assert "warning:" in err and "stage 1 asks for 100 requests" in err
