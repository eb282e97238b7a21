"""Power and sample size: the textbook values, the smallest n that reaches power, and simulation."""

from __future__ import annotations

import numpy as np
import pytest

from lockgate.errors import ValidationError
from lockgate.stats import (
    power_two_means,
    power_two_proportions,
    sample_size_two_means,
    sample_size_two_proportions,
)


def test_two_means_textbook_value() -> None:
    # d = 0.5, alpha 0.05 two-sided, power 0.8: (1.96 + 0.8416)^2 * 2 / 0.25 = 62.8 -> 63 per arm
    assert sample_size_two_means(1.0, 0.5) == 63


def test_two_proportions_closed_form() -> None:
    # Fleiss' formula for 10% vs 15%, two-sided 5%, power 80%: 685.3 -> 686 per arm
    assert sample_size_two_proportions(0.10, 0.05) == 686


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
@pytest.mark.parametrize("ratio", [1.0, 0.25])
def test_sample_size_is_the_smallest_n_reaching_power(alternative: str, ratio: float) -> None:
    n = sample_size_two_proportions(0.01, 0.005, alternative=alternative, ratio=ratio)  # type: ignore[arg-type]
    kwargs = {"alternative": alternative, "ratio": ratio}
    assert power_two_proportions(n, 0.01, 0.005, **kwargs) >= 0.8  # type: ignore[arg-type]
    assert power_two_proportions(n - 1, 0.01, 0.005, **kwargs) < 0.8  # type: ignore[arg-type]
    m = sample_size_two_means(2.0, 0.3, alternative=alternative, ratio=ratio)  # type: ignore[arg-type]
    assert power_two_means(m, 2.0, 0.3, **kwargs) >= 0.8  # type: ignore[arg-type]
    assert power_two_means(m - 1, 2.0, 0.3, **kwargs) < 0.8  # type: ignore[arg-type]


def test_power_matches_simulation() -> None:
    rng = np.random.default_rng(3)
    n = sample_size_two_proportions(0.05, 0.02, alternative="greater")
    runs = 4000
    base = rng.binomial(n, 0.05, size=runs) / n
    cand = rng.binomial(n, 0.07, size=runs) / n
    pooled = (base + cand) / 2
    z = (cand - base) / np.sqrt(pooled * (1 - pooled) * 2 / n)
    simulated = float(np.mean(z > 1.6448536269514722))
    assert simulated == pytest.approx(0.8, abs=0.03)


def test_bad_input() -> None:
    with pytest.raises(ValidationError):
        sample_size_two_proportions(0.0, 0.01)
    with pytest.raises(ValidationError):
        sample_size_two_proportions(0.99, 0.05)
    with pytest.raises(ValidationError):
        sample_size_two_means(1.0, 0.5, power=1.0)
    with pytest.raises(ValidationError):
        sample_size_two_means(-1.0, 0.5)
    with pytest.raises(ValidationError):
        power_two_means(0, 1.0, 0.5)
