from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lockgate.figures import plot_peeking
from lockgate.figures.peeking import rollbacks_by_look
from lockgate.stats.decision import SequentialPolicy
from lockgate.stats.simulation import (
    DeciderOutcome,
    NaivePeeking,
    PolicyDecider,
    StreamSpec,
    simulate_streams,
)

LOOKS, PER_LOOK = 40, 240


def _outcomes(effect: float) -> dict[str, DeciderOutcome]:
    spec = StreamSpec(looks=LOOKS, requests_per_look=PER_LOOK, candidate_error_rate=0.01 + effect)
    deciders = [NaivePeeking(alpha=0.05), PolicyDecider(SequentialPolicy(alpha=0.05, max_samples=None))]
    return dict(simulate_streams(np.random.default_rng(3), spec, deciders, runs=400))


def test_rollbacks_by_look_grow_to_the_overall_rate() -> None:
    for outcome in _outcomes(0.0).values():
        shares = rollbacks_by_look(outcome, LOOKS, PER_LOOK)
        assert shares.shape == (LOOKS,)
        assert np.all(np.diff(shares) >= 0)
        assert shares[-1] == outcome.rollback_rate


def test_naive_peeking_climbs_above_alpha_and_the_sequential_test_does_not() -> None:
    outcomes = _outcomes(0.0)
    naive = rollbacks_by_look(outcomes["naive"], LOOKS, PER_LOOK)
    lockgate = rollbacks_by_look(outcomes["lockgate"], LOOKS, PER_LOOK)
    assert naive[-1] > 0.15 > 0.05 >= lockgate[-1]
    assert naive[-1] > naive[0]


def test_the_svg_names_each_decider_and_alpha(tmp_path: Path) -> None:
    path = plot_peeking(
        _outcomes(0.0),
        tmp_path / "p.svg",
        looks=LOOKS,
        requests_per_look=PER_LOOK,
        alpha=0.05,
        is_aa=True,
    )
    texts = re.findall(r"<text[^>]*>([^<]+)</text>", path.read_text(encoding="utf-8"))
    assert "alpha = 0.05" in texts
    assert any(t.startswith("naive peeking") for t in texts)
    assert any(t.startswith("lockgate sequential test") for t in texts)
    assert "no real difference: false rollbacks as looks grow" in texts


def test_with_a_real_regression_the_lines_are_power_and_no_alpha_line(tmp_path: Path) -> None:
    outcomes = _outcomes(0.02)
    path = plot_peeking(
        outcomes, tmp_path / "p.svg", looks=LOOKS, requests_per_look=PER_LOOK, alpha=0.05, is_aa=False
    )
    texts = re.findall(r"<text[^>]*>([^<]+)</text>", path.read_text(encoding="utf-8"))
    assert "a real regression: rollbacks as looks grow" in texts
    assert "alpha = 0.05" not in texts
    assert rollbacks_by_look(outcomes["lockgate"], LOOKS, PER_LOOK)[-1] > 0.5  # 3% against 1% is found
