from __future__ import annotations

import re
from pathlib import Path

from lockgate.figures import plot_cost
from lockgate.rollout import load_spec
from lockgate.rollout.cost import CostInputs, estimate_cost

ROOT = Path(__file__).parents[2]


def test_every_strategy_has_a_bar_in_each_panel(tmp_path: Path) -> None:
    spec = load_spec(ROOT / "examples" / "specs" / "canary.yaml")
    estimate = estimate_cost(
        spec, CostInputs(price_per_replica_hour=2, traffic_rps=200, replica_throughput_rps=50)
    )
    svg = plot_cost(estimate, tmp_path / "cost.svg").read_text(encoding="utf-8")
    texts = re.findall(r"<text[^>]*>([^<]+)</text>", svg)
    for row in estimate.strategies:
        assert row.strategy in texts
    assert {"extra cost ($)", "duration (min)", "risk exposure (requests)"} <= set(texts)
    assert "all, unjudged" in texts  # direct promotes without judging
    assert f"{estimate.for_strategy('canary').cost:,.2f}" in texts
