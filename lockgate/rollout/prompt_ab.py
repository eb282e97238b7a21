"""How often an A/B test between two prompt versions, decided by thumbs up/down, picks the right one.

Simulated users rate answers (a thumbs up is a conversion of 1, a thumbs down 0, sent to
``/feedback``): ``rate_a`` of prompt A's answers get a thumbs up, ``rate_b`` of prompt B's; the
default 0.50 against 0.55 is "users prefer B 10% more often". Each run is a whole A/B test of
:data:`PROMPT_AB_SPEC` (``examples/specs/prompt_ab.yaml``) through the real router, controller and
default policy (:func:`lockgate.rollout.simulate.simulate`): sticky users, each with their own
routing key; thumbs arrive after an exponential delay (mean ``feedback_delay_s``); a new routing
salt every run. :func:`prompt_ab` runs ``runs`` such tests with B better and ``runs`` A/A tests
(both at ``rate_a``) and reports the share where B was promoted, and the share of A/A tests that
promoted a winner anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import ValidationError
from lockgate.rollout.policy import policy_for
from lockgate.rollout.simulate import simulate
from lockgate.rollout.spec import DeploymentSpec, parse_spec

__all__ = ["PROMPT_AB_SPEC", "PromptAbResult", "ThumbsTraffic", "prompt_ab"]

PROMPT_AB_SPEC: Mapping[str, Any] = {
    "name": "support",
    "variants": {"prompt-a": "models:/support-lm/1", "prompt-b": "models:/support-lm/1"},
    "baseline": "prompt-a",
    "candidate": "prompt-b",
    "llm": {
        "prompt-a": {"prompt": "support@1"},
        "prompt-b": {
            "prompt": "support@2",
            "variables": {"product": "lockgate"},
            "price_per_1k_tokens": 0.002,
        },
    },
    "strategy": {"type": "ab", "split_percent": 50, "min_requests": 1000, "max_duration_s": 7200},
    "analysis": {
        "policy": "sequential",
        "alpha": 0.05,
        "primary": {
            "metric": "conversions",
            "direction": "increase",
            "min_improvement": {"relative": 0.05},
            "scale": 0.05,
        },
        "on_inconclusive": "rollback",
        # LLM guardrails (not judged here: the simulated variants generate no tokens)
        "metrics": [{"name": "ttft_ms", "max": 500}, {"name": "empty_answer_rate", "max": 0.02}],
    },
}
"""The A/B test every run makes (``examples/specs/prompt_ab.yaml`` holds the same spec)."""


@dataclass
class ThumbsTraffic:
    """Sticky users whose thumbs up come at a rate per variant (a
    :class:`~lockgate.rollout.simulate.TrafficSource`); answers take ``latency_ms`` (lognormal)."""

    thumbs_up: Mapping[str, float]
    users: int = 5_000
    requests_per_s: float = 100.0
    feedback_delay_s: float = 30.0
    latency_ms: float = 300.0

    def key_of(self, user: int) -> str:
        return f"user-{user}"

    def arrivals(self, duration_s: float, rng: np.random.Generator | None = None) -> int:
        return int(_gen(rng).poisson(self.requests_per_s * duration_s))

    def requests(
        self, count: int, rng: np.random.Generator | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        users = _gen(rng).integers(0, self.users, size=count).astype(np.int64)
        return users, np.ones(count, dtype=np.bool_)

    def serve(
        self, variant: str, count_or_users: npt.NDArray[np.int64], rng: np.random.Generator | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        size = int(count_or_users.size)
        latencies = self.latency_ms * np.exp(0.25 * _gen(rng).standard_normal(size))
        return latencies, np.zeros(size, dtype=np.bool_)

    def outcomes(
        self, variant: str, users: npt.NDArray[np.int64], rng: np.random.Generator | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        gen = _gen(rng)
        values = (gen.random(users.size) < self.thumbs_up[variant]).astype(np.float64)
        return values, gen.exponential(self.feedback_delay_s, users.size)


def _gen(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()


@dataclass(frozen=True)
class PromptAbResult:
    """``correct``: share of B-better tests that promoted B; ``aa_false_winner``: share of A/A
    tests that promoted the candidate; ``median_decision_s``: simulated time to B's promotion."""

    correct: float
    aa_false_winner: float
    runs: int
    rate_a: float
    rate_b: float
    median_decision_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "correct": self.correct,
            "aa_false_winner": self.aa_false_winner,
            "runs": self.runs,
            "thumbs_up_rate_a": self.rate_a,
            "thumbs_up_rate_b": self.rate_b,
            "median_decision_s": self.median_decision_s,
        }


def prompt_ab(
    runs: int = 400,
    *,
    rate_a: float = 0.50,
    rate_b: float = 0.55,
    seed: int = 20261203,
    workers: int = 1,
    spec: DeploymentSpec | None = None,
) -> PromptAbResult:
    """Run ``runs`` A/B tests where users prefer B (``rate_b`` against ``rate_a`` thumbs up) and
    ``runs`` A/A tests; deterministic for a ``seed`` (and any ``workers``)."""
    if runs < 1 or workers < 1 or not (0.0 <= rate_a <= 1.0 and 0.0 <= rate_b <= 1.0):
        raise ValidationError(
            "runs and workers must be at least 1 and the rates between 0 and 1",
            hint="e.g. prompt_ab(400, rate_a=0.50, rate_b=0.55)",
        )
    chosen = spec if spec is not None else parse_spec(PROMPT_AB_SPEC)
    jobs = [(chosen, rate_a, rate_b, seed, i) for i in range(runs)]
    jobs += [(chosen, rate_a, rate_a, seed + 1, i) for i in range(runs)]
    if workers == 1:
        outcomes = [_run(job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            outcomes = list(pool.map(_run, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
    better, same = outcomes[:runs], outcomes[runs:]
    promoted_at = sorted(at for phase, at in better if phase == "promoted")
    return PromptAbResult(
        correct=len(promoted_at) / runs,
        aa_false_winner=sum(phase == "promoted" for phase, _ in same) / runs,
        runs=runs,
        rate_a=rate_a,
        rate_b=rate_b,
        median_decision_s=float(np.median(promoted_at)) if promoted_at else None,
    )


def _run(job: tuple[DeploymentSpec, float, float, int, int]) -> tuple[str, float]:
    """One A/B test: how it ended and when (simulated seconds)."""
    spec, rate_a, rate_b, seed, index = job
    spec = replace(spec, salt=f"prompt-ab-{seed}-{index}")
    traffic = ThumbsTraffic({spec.baseline: rate_a, spec.candidate: rate_b})
    result = simulate(
        spec, policy_for(spec), traffic, seed=seed * 7_919 + index, total_requests=10**9, tick_s=10.0
    )
    return result.state.phase.value, result.duration_s
