from __future__ import annotations

import re
from pathlib import Path

import pytest

from lockgate.errors import UserError
from lockgate.figures import plot_timeline
from lockgate.rollout import ThresholdPolicy, parse_spec, simulate
from lockgate.rollout.simulate import SimulationResult
from lockgate.testing import SimulatedTraffic, VariantBehaviour

SPEC = {
    "name": "demo",
    "variants": {"stable": "models:/demo/1", "canary": "models:/demo/2"},
    "baseline": "stable",
    "candidate": "canary",
    "strategy": {
        "type": "canary",
        "steps": [
            {"weight_percent": 10, "min_duration_s": 10, "min_requests": 200},
            {"weight_percent": 50, "min_duration_s": 10, "min_requests": 300},
        ],
    },
}


def _rollout(candidate_error_rate: float) -> SimulationResult:
    spec = parse_spec(SPEC)
    traffic = SimulatedTraffic(
        {
            "stable": VariantBehaviour(error_rate=0.01),
            "canary": VariantBehaviour(error_rate=candidate_error_rate),
        },
        requests_per_s=100.0,
        seed=1,
    )
    policy = ThresholdPolicy(min_requests=200, max_error_rate_ratio=2.0)
    return simulate(spec, policy, traffic, seed=1, total_requests=20_000)


@pytest.mark.parametrize(("error_rate", "last"), [(0.01, "promote"), (0.08, "rollback")])
def test_the_svg_shows_every_event_and_variant(tmp_path: Path, error_rate: float, last: str) -> None:
    result = _rollout(error_rate)
    actions = [entry.action for entry in result.timeline]
    assert actions[-1] == last
    svg = plot_timeline(result, tmp_path / "rollout.svg").read_text(encoding="utf-8")
    texts = re.findall(r"<text[^>]*>([^<]+)</text>", svg)
    for action in actions:
        assert action in texts
    assert {"stable", "canary"} <= set(texts)
    assert f"simulated rollout: {result.state.phase.value}" in svg
    assert any(t.startswith(f"{last}: ") for t in texts)  # the last event's reason


def test_the_same_rollout_draws_the_same_bytes(tmp_path: Path) -> None:
    first = plot_timeline(_rollout(0.08), tmp_path / "a.svg").read_bytes()
    second = plot_timeline(_rollout(0.08), tmp_path / "b.svg").read_bytes()
    assert first == second


def test_png_works_and_other_suffixes_are_refused(tmp_path: Path) -> None:
    png = plot_timeline(_rollout(0.01), tmp_path / "a.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UserError, match=r"must end in \.svg or \.png"):
        plot_timeline(_rollout(0.01), tmp_path / "a.pdf")
