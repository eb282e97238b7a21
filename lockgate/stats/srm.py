"""Sample-ratio mismatch: did each variant get the share of traffic it was meant to get?

A mismatch means assignment or logging is broken (a crashing variant that drops requests, a bot that
sticks to one arm), so every other number is suspect: the policy halts instead of deciding.

- :func:`srm_chi2` — Pearson's chi-square goodness of fit, for reports, conventionally flagged at
  ``p < 0.001``. Checked again and again it inflates its error like any fixed test.
- :class:`SequentialSRM` — the Dirichlet-multinomial mixture test of Lindon & Malek, "Anytime-valid
  inference for multinomial count data", NeurIPS 2022: the Bayes factor of a Dirichlet(``k * p0``)
  mixture against the expected shares ``p0`` is a martingale under the null, so ``1 / BF`` is an
  always-valid p-value that may be checked after every request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln
from scipy.stats import chi2

from lockgate.errors import ValidationError
from lockgate.stats._arguments import check_alpha, check_positive

__all__ = ["SRMResult", "SequentialSRM", "srm_chi2"]


@dataclass(frozen=True)
class SRMResult:
    """Observed against expected shares; ``is_mismatch`` when ``p_value < alpha``."""

    p_value: float
    statistic: float
    counts: tuple[int, ...]
    observed_shares: tuple[float, ...]
    expected_shares: tuple[float, ...]
    alpha: float

    @property
    def is_mismatch(self) -> bool:
        return self.p_value < self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {
            "p_value": self.p_value,
            "statistic": self.statistic,
            "counts": list(self.counts),
            "observed_shares": list(self.observed_shares),
            "expected_shares": list(self.expected_shares),
            "alpha": self.alpha,
            "is_mismatch": self.is_mismatch,
        }


def _shares(expected_shares: npt.ArrayLike) -> npt.NDArray[np.float64]:
    shares = np.asarray(expected_shares, dtype=np.float64).ravel()
    if shares.size < 2 or not np.isfinite(shares).all() or (shares <= 0).any():
        raise ValidationError(
            f"expected shares {shares.tolist()} are not valid",
            hint="give one share > 0 per variant, e.g. (0.95, 0.05); they are normalised to sum 1",
        )
    out: npt.NDArray[np.float64] = shares / shares.sum()
    return out


def _counts(counts: npt.ArrayLike, size: int) -> npt.NDArray[np.int64]:
    arr = np.asarray(counts).ravel()
    if arr.size != size:
        raise ValidationError(f"{arr.size} counts for {size} expected shares", hint="one per variant")
    if (arr < 0).any():
        raise ValidationError(f"counts {arr.tolist()} include a negative number")
    return arr.astype(np.int64)


def srm_chi2(counts: npt.ArrayLike, expected_shares: npt.ArrayLike, *, alpha: float = 0.001) -> SRMResult:
    """Pearson chi-square test of observed counts against expected shares (equals
    ``scipy.stats.chisquare``)."""
    check_alpha(alpha)
    shares = _shares(expected_shares)
    observed = _counts(counts, shares.size)
    total = int(observed.sum())
    if total == 0:
        raise ValidationError("no requests counted yet", hint="test SRM once traffic has arrived")
    expected = shares * total
    statistic = float(((observed - expected) ** 2 / expected).sum())
    p_value = float(chi2.sf(statistic, shares.size - 1))
    return SRMResult(
        p_value=p_value,
        statistic=statistic,
        counts=tuple(int(c) for c in observed),
        observed_shares=tuple(float(c) / total for c in observed),
        expected_shares=tuple(float(s) for s in shares),
        alpha=alpha,
    )


@dataclass(frozen=True)
class SequentialSRM:
    """Always-valid SRM test (Dirichlet-multinomial mixture, Lindon & Malek 2022).

    ``concentration`` k sets the prior Dirichlet(k * p0): at k = 100 and a 50/50 split the prior
    spread of a share is about 5 points, the size of mismatch that broken assignment produces.
    """

    expected_shares: tuple[float, ...]
    alpha: float = 0.001
    concentration: float = 100.0

    def __post_init__(self) -> None:
        _shares(self.expected_shares)
        check_alpha(self.alpha)
        check_positive(self.concentration, "concentration")

    def log_lr(self, counts: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Log Bayes factor; ``counts`` has the variants on its last axis (vectorised)."""
        shares = _shares(self.expected_shares)
        x = np.asarray(counts, dtype=np.float64)
        prior = self.concentration * shares
        n = x.sum(axis=-1)
        log_marginal = (
            gammaln(prior.sum())
            - gammaln(prior.sum() + n)
            + (gammaln(prior + x) - gammaln(prior)).sum(axis=-1)
        )
        out: npt.NDArray[np.float64] = log_marginal - (x * np.log(shares)).sum(axis=-1)
        return out

    def test(self, counts: npt.ArrayLike, previous: SRMResult | None = None) -> SRMResult:
        """Always-valid p-value (running minimum when ``previous`` is passed)."""
        shares = _shares(self.expected_shares)
        observed = _counts(counts, shares.size)
        total = int(observed.sum())
        log_lr = float(self.log_lr(observed)) if total else 0.0
        p_value = math.exp(-max(log_lr, 0.0))
        if previous is not None:
            p_value = min(p_value, previous.p_value)
        return SRMResult(
            p_value=p_value,
            statistic=log_lr,
            counts=tuple(int(c) for c in observed),
            observed_shares=tuple(float(c) / total if total else 0.0 for c in observed),
            expected_shares=tuple(float(s) for s in shares),
            alpha=self.alpha,
        )
