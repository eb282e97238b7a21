"""The per-variant analysis behind ``lockgate analyze``: metric choice, lift, verdicts, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from lockgate.errors import ValidationError
from lockgate.stats import MixtureSPRT, RateRatioSPRT, VariantStats, analyze_variants


def _arm(requests: int, errors: int = 0, conversions: tuple[int, int] | None = None) -> VariantStats:
    stats = VariantStats()
    stats.record_many(np.ones(requests), np.arange(requests) < errors)
    if conversions is not None:
        trials, successes = conversions
        stats.conversions.update(np.arange(trials) < successes)
    return stats


def test_conversions_are_chosen_and_a_clear_lift_is_better() -> None:
    stats = {"stable": _arm(2000, conversions=(2000, 200)), "next": _arm(2000, conversions=(2000, 300))}
    analysis = analyze_variants(stats, "stable", mde=0.01)
    assert analysis.metric == "conversions" and analysis.higher_is_better
    base, candidate = analysis.variants
    assert base.is_baseline and base.verdict == "baseline" and base.mean == pytest.approx(0.10)
    assert candidate.mean == pytest.approx(0.15)
    assert candidate.lift == pytest.approx(0.05)
    assert candidate.relative_lift == pytest.approx(0.5)
    expected = MixtureSPRT(mde=0.01).test_proportions(stats["stable"].conversions, stats["next"].conversions)
    assert candidate.p_value == pytest.approx(expected.p_value)
    assert candidate.ci_low == pytest.approx(expected.ci_low)
    assert candidate.ci_low is not None and candidate.ci_low > 0
    assert candidate.verdict == "better"


def test_a_drop_is_worse_and_a_tie_inconclusive() -> None:
    worse = analyze_variants(
        {"a": _arm(2000, conversions=(2000, 300)), "b": _arm(2000, conversions=(2000, 150))}, "a"
    )
    assert worse.variants[1].verdict == "worse"
    tie = analyze_variants(
        {"a": _arm(500, conversions=(500, 50)), "b": _arm(500, conversions=(500, 52))}, "a"
    )
    assert tie.variants[1].verdict == "inconclusive"
    assert tie.variants[1].p_value is not None and tie.variants[1].p_value > 0.05


def test_outcome_means_and_too_little_data() -> None:
    rng = np.random.default_rng(0)
    base, candidate = VariantStats(), VariantStats()
    base.outcome.update(rng.normal(10.0, 2.0, 1000))
    candidate.outcome.update(rng.normal(11.0, 2.0, 1000))
    analysis = analyze_variants({"a": base, "b": candidate}, "a")
    assert analysis.metric == "outcome"
    assert analysis.mde == pytest.approx(0.1 * base.outcome.std)
    assert analysis.variants[1].lift == pytest.approx(candidate.outcome.mean - base.outcome.mean)
    assert analysis.variants[1].verdict == "better"
    one = VariantStats()
    one.outcome.add(3.0)
    waiting = analyze_variants({"a": base, "b": one}, "a")
    assert waiting.variants[1].verdict == "waiting for data" and waiting.variants[1].p_value is None


def test_without_feedback_the_error_rate_is_compared_lower_is_better() -> None:
    stats = {"a": _arm(3000, errors=30), "b": _arm(3000, errors=300)}
    analysis = analyze_variants(stats, "a")
    assert analysis.metric == "errors" and not analysis.higher_is_better
    row = analysis.variants[1]
    assert row.mean == pytest.approx(0.10) and row.verdict == "worse"
    assert row.error_p is None  # the guardrail would ask the same question


def test_the_error_guardrail_flags_a_failing_candidate_whatever_the_metric() -> None:
    stats = {
        "a": _arm(3000, errors=30, conversions=(300, 30)),
        "b": _arm(3000, errors=300, conversions=(300, 31)),
    }
    row = analyze_variants(stats, "a").variants[1]
    expected = RateRatioSPRT(mde=0.5, alternative="greater").test(30, 3000, 300, 3000)
    assert row.error_p == pytest.approx(expected.p_value)
    assert row.error_ratio == pytest.approx(10.0)
    assert row.verdict == "worse: error rate"


def test_to_dict_is_plain_json() -> None:
    import json

    analysis = analyze_variants({"a": _arm(10), "b": _arm(10)}, "a")
    document = analysis.to_dict()
    json.dumps(document, allow_nan=False)
    assert document["variants"][0]["variant"] == "a"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baseline": "nope"}, "baseline 'nope'"),
        ({"alpha": 1.5}, "alpha"),
        ({"metric": "revenue"}, "metric 'revenue'"),
        ({"mde": -1.0}, "mde"),
    ],
)
def test_bad_input_is_a_named_error(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"baseline": "a", **kwargs}
    with pytest.raises(ValidationError, match=message):
        analyze_variants({"a": _arm(10), "b": _arm(10)}, **arguments)  # type: ignore[arg-type]
