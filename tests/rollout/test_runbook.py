"""The runbook renderer: the spec's own stages, thresholds and names, in the template's sections."""

from __future__ import annotations

import re
from pathlib import Path

from lockgate.rollout.runbook import RUNBOOK_SECTIONS, render_runbook
from lockgate.rollout.spec import parse_spec

TEMPLATE = (Path(__file__).parents[2] / "docs" / "runbook-template.md").read_text(encoding="utf-8")


def _spec(**extra: object) -> dict[str, object]:
    return {
        "name": "fraud",
        "variants": {"stable": "models:/fraud/3", "canary": "models:/fraud/4"},
        "baseline": "stable",
        "candidate": "canary",
        "strategy": {
            "type": "canary",
            "steps": [
                {"weight_percent": 5, "min_duration_s": 300, "min_requests": 1000},
                {"weight_percent": 50, "min_duration_s": 600},
            ],
        },
        **extra,
    }


def _headings(markdown: str) -> list[str]:
    return re.findall(r"^## (.+)$", markdown, re.M)


def test_the_runbook_has_the_templates_sections_in_order() -> None:
    text = render_runbook(parse_spec(_spec()))
    assert _headings(text) == list(RUNBOOK_SECTIONS)
    assert _headings(TEMPLATE) == list(RUNBOOK_SECTIONS)


def test_stages_owners_and_commands_come_from_the_spec() -> None:
    text = render_runbook(parse_spec(_spec()), owners=["owner=ana", "li"], url="http://gw:8080")
    assert "| owner | ana |" in text and "| on call | li |" in text
    assert "| 1 | stepping | 5% | - | 300 s (at most 900 s) | 1,000 |" in text
    assert "| 2 | stepping | 50% | - | 600 s (at most 1800 s) | 0 |" in text
    for verb in ("promote", "pause", "rollback"):
        assert re.search(rf"^lockgate rollout {verb} fraud .*--reason .*--url http://gw:8080$", text, re.M)
    assert "lockgate rollout status fraud --watch --url http://gw:8080" in text
    assert "lockgate rollout history fraud" in text and "/metrics" in text


def test_sequential_thresholds_are_the_policys() -> None:
    text = render_runbook(parse_spec(_spec(analysis={"alpha": 0.02, "min_samples": 500})))
    assert "- `alpha`: 0.02" in text and "- `min_samples`: 500" in text
    assert "alpha 0.02 / 2 = 0.01" in text


def test_threshold_limits_are_listed() -> None:
    spec = parse_spec(_spec(analysis={"policy": "threshold", "max_error_rate_ratio": 2.0}))
    text = render_runbook(spec)
    assert "Analysis policy `threshold`" in text
    assert "- `max_error_rate_ratio`: 2" in text and "- `min_requests`: 200" in text


def test_blue_green_warmup_limits_and_direct_have_their_words() -> None:
    blue_green = _spec(strategy={"type": "blue_green", "warmup": {"max_error_rate": 0.02}})
    assert "stage 1: the candidate's error rate at most 0.02" in render_runbook(parse_spec(blue_green))
    direct = render_runbook(parse_spec(_spec(strategy={"type": "direct"})))
    assert "roll back by hand" in direct
