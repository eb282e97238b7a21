"""Test doubles for lockgate users: a fake predictor, simulated traffic and an in-memory store.

Use them to test your own policies and rollout specs without a server, a model or a database::

    from lockgate.rollout import ThresholdPolicy, parse_spec, simulate
    from lockgate.testing import SimulatedTraffic, VariantBehaviour

    traffic = SimulatedTraffic({"stable": VariantBehaviour(0.01), "canary": VariantBehaviour(0.03)})
    result = simulate(spec, ThresholdPolicy(), traffic, seed=1)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lockgate.errors import ValidationError
from lockgate.rollout.store import InMemoryStore

__all__ = [
    "FakePredictionError",
    "FakePredictor",
    "InMemoryStore",
    "SimulatedTraffic",
    "VariantBehaviour",
]


class FakePredictionError(RuntimeError):
    """What :class:`FakePredictor` raises on the calls it is told to fail (a model bug)."""


class FakePredictor:
    """A deterministic stand-in for a model.

    ``output`` is a constant or a function of one input row; every ``fail_every``-th call raises
    :class:`FakePredictionError` (0: never); ``latency_ms`` is what each call reports, and is slept
    only when a ``sleep`` function is given (pass ``time.sleep`` to really wait).
    """

    def __init__(
        self,
        name: str = "fake",
        version: str = "1",
        *,
        output: float | Callable[[Any], Any] = 0.0,
        latency_ms: float = 0.0,
        fail_every: int = 0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if latency_ms < 0 or fail_every < 0:
            raise ValidationError(
                "latency_ms and fail_every must not be negative", hint="use 0 to switch them off"
            )
        self.name = name
        self.version = version
        self.output = output
        self.latency_ms = latency_ms
        self.fail_every = fail_every
        self.sleep = sleep
        self.calls = 0
        self.rows_seen = 0

    def predict(self, rows: Any) -> npt.NDArray[Any]:
        """One output per row of ``rows`` (a sequence or an array)."""
        self.calls += 1
        if self.sleep is not None and self.latency_ms > 0:
            self.sleep(self.latency_ms / 1000.0)
        if self.fail_every and self.calls % self.fail_every == 0:
            raise FakePredictionError(f"{self.name} v{self.version} failed call {self.calls}")
        batch = list(rows)
        self.rows_seen += len(batch)
        if callable(self.output):
            return np.asarray([self.output(row) for row in batch])
        return np.full(len(batch), self.output, dtype=np.float64)


LatencyShape = Literal["lognormal", "pareto", "bimodal"]
_SHAPES: tuple[str, ...] = ("lognormal", "pareto", "bimodal")


@dataclass(frozen=True)
class VariantBehaviour:
    """How a simulated variant serves: its mean error rate, its latency, and outcomes.

    Latency has a median of ``latency_median_ms`` and a ``latency_shape``: ``lognormal`` (spread
    ``latency_sigma``), ``pareto`` (tail index ``latency_pareto_alpha``: 1 has no finite mean) or
    ``bimodal`` (a fifth of requests ``latency_slow_factor`` times slower, each mode lognormal).
    Scaling ``latency_median_ms`` scales every quantile. ``conversion_rate`` (mean) makes each
    answered request produce a 0/1 outcome, joined later as feedback would be.
    """

    error_rate: float = 0.0
    latency_median_ms: float = 10.0
    latency_sigma: float = 0.25
    latency_shape: LatencyShape = "lognormal"
    latency_pareto_alpha: float = 1.0
    latency_slow_factor: float = 5.0
    conversion_rate: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValidationError(f"error_rate {self.error_rate} is outside [0, 1]", hint="e.g. 0.01 for 1%")
        if self.latency_median_ms <= 0 or self.latency_sigma < 0:
            raise ValidationError(
                "latency_median_ms must be above 0 and latency_sigma at least 0",
                hint="e.g. latency_median_ms=10, latency_sigma=0.25",
            )
        if self.latency_shape not in _SHAPES:
            raise ValidationError(
                f"latency_shape '{self.latency_shape}' is unknown", hint=f"use one of {', '.join(_SHAPES)}"
            )
        if self.latency_pareto_alpha <= 0 or self.latency_slow_factor < 1:
            raise ValidationError(
                "latency_pareto_alpha must be above 0 and latency_slow_factor at least 1",
                hint="e.g. latency_pareto_alpha=1.0, latency_slow_factor=5",
            )
        if self.conversion_rate is not None and not 0.0 <= self.conversion_rate <= 1.0:
            raise ValidationError(
                f"conversion_rate {self.conversion_rate} is outside [0, 1]", hint="e.g. 0.1 for 10%"
            )

    def latencies(self, scale: npt.NDArray[np.float64], rng: np.random.Generator) -> npt.NDArray[np.float64]:
        """One latency (ms) per request, each request's user scale applied."""
        count = scale.size
        median = self.latency_median_ms * scale
        if self.latency_shape == "pareto":
            alpha = self.latency_pareto_alpha
            # Pareto(x_m, alpha) has median x_m * 2^(1/alpha); 1 - U avoids U = 0
            out: npt.NDArray[np.float64] = (
                median / 2.0 ** (1.0 / alpha) * (1.0 - rng.random(count)) ** (-1.0 / alpha)
            )
            return out
        noise = np.exp(self.latency_sigma * rng.standard_normal(count))
        if self.latency_shape == "bimodal":
            slow = rng.random(count) < 0.2
            return median * noise * np.where(slow, self.latency_slow_factor, 1.0)
        return median * noise


class SimulatedTraffic:
    """A seeded source of synthetic requests from users, and of how each variant answers them.

    Requests arrive at ``requests_per_s`` (Poisson) from ``users`` distinct users, each the same
    routing key every time (sticky); a ``keyless_fraction`` of requests carry no key. Users may
    differ: with ``user_error_beta=(a, b)`` each user's error propensity is a draw from Beta(a, b)
    relative to its mean (a variant with ``error_rate`` r gives that user ``r * draw / mean``), with
    ``user_latency_sigma`` each user's latency is scaled by a lognormal factor, and with
    ``user_conversion_beta`` conversions vary by user the same way as errors. Outcomes arrive after
    an exponential delay with mean ``outcome_delay_s`` (0: at once). Every method takes an optional
    ``rng``; without one it uses the traffic's own generator, seeded with ``seed``; users are drawn
    from ``seed`` alone, so two runs with one seed meet the same users.
    """

    def __init__(
        self,
        behaviours: Mapping[str, VariantBehaviour],
        *,
        requests_per_s: float = 100.0,
        users: int = 5_000,
        keyless_fraction: float = 0.0,
        user_error_beta: tuple[float, float] | None = None,
        user_latency_sigma: float = 0.0,
        user_conversion_beta: tuple[float, float] | None = None,
        outcome_delay_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        if requests_per_s <= 0 or users < 1 or not 0.0 <= keyless_fraction <= 1.0:
            raise ValidationError(
                "requests_per_s must be above 0, users at least 1, keyless_fraction in [0, 1]",
                hint="e.g. SimulatedTraffic(b, requests_per_s=100, users=5000)",
            )
        for name, beta in (
            ("user_error_beta", user_error_beta),
            ("user_conversion_beta", user_conversion_beta),
        ):
            if beta is not None and (len(beta) != 2 or min(beta) <= 0):
                raise ValidationError(f"{name} {beta} is not two numbers above 0", hint="e.g. (2, 198)")
        if user_latency_sigma < 0 or outcome_delay_s < 0:
            raise ValidationError(
                "user_latency_sigma and outcome_delay_s must be at least 0", hint="use 0 to switch them off"
            )
        self.behaviours = dict(behaviours)
        self.requests_per_s = requests_per_s
        self.users = users
        self.keyless_fraction = keyless_fraction
        self.outcome_delay_s = outcome_delay_s
        self.rng = np.random.default_rng(seed)
        population = np.random.default_rng([seed, 1])
        self.error_factor = _relative_beta(population, user_error_beta, users)
        self.conversion_factor = _relative_beta(population, user_conversion_beta, users)
        self.latency_factor = np.exp(user_latency_sigma * population.standard_normal(users))

    def key_of(self, user: int) -> str:
        """The routing key user ``user`` sends."""
        return f"user-{user}"

    def arrivals(self, duration_s: float, rng: np.random.Generator | None = None) -> int:
        """How many requests arrive in ``duration_s`` seconds."""
        return int((rng or self.rng).poisson(self.requests_per_s * duration_s))

    def requests(
        self, count: int, rng: np.random.Generator | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """The user of each of ``count`` requests, and whether it carries the user's key."""
        gen = rng or self.rng
        users = gen.integers(0, self.users, size=count)
        keyed = gen.random(count) >= self.keyless_fraction
        return users.astype(np.int64), keyed

    def keys(self, count: int, rng: np.random.Generator | None = None) -> list[str | None]:
        """Routing keys for ``count`` requests (``None`` for a request without one)."""
        users, keyed = self.requests(count, rng)
        return [self.key_of(int(u)) if has_key else None for u, has_key in zip(users, keyed, strict=True)]

    def _behaviour(self, variant: str) -> VariantBehaviour:
        if variant not in self.behaviours:
            raise ValidationError(
                f"simulated traffic has no behaviour for variant '{variant}'",
                hint=f"add it; known: {', '.join(sorted(self.behaviours))}",
            )
        return self.behaviours[variant]

    def serve(
        self,
        variant: str,
        count_or_users: int | npt.NDArray[np.int64],
        rng: np.random.Generator | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Latencies (ms) and error flags for requests served by ``variant``: pass the users of
        the requests (or a count, for requests of users drawn at random)."""
        behaviour = self._behaviour(variant)
        gen = rng or self.rng
        if isinstance(count_or_users, int | np.integer):
            users = gen.integers(0, self.users, size=int(count_or_users))
        else:
            users = np.asarray(count_or_users, dtype=np.int64)
        latencies = behaviour.latencies(self.latency_factor[users], gen)
        rate = np.minimum(behaviour.error_rate * self.error_factor[users], 1.0)
        errors = gen.random(users.size) < rate
        return latencies, errors

    def outcomes(
        self, variant: str, users: npt.NDArray[np.int64], rng: np.random.Generator | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
        """0/1 outcomes of answered requests and the delay (s) before each arrives (None when the
        variant has no ``conversion_rate``)."""
        behaviour = self._behaviour(variant)
        if behaviour.conversion_rate is None:
            return None
        gen = rng or self.rng
        rate = np.minimum(behaviour.conversion_rate * self.conversion_factor[users], 1.0)
        values = (gen.random(users.size) < rate).astype(np.float64)
        delays = (
            gen.exponential(self.outcome_delay_s, users.size)
            if self.outcome_delay_s > 0
            else np.zeros(users.size)
        )
        return values, delays


def _relative_beta(
    rng: np.random.Generator, beta: tuple[float, float] | None, users: int
) -> npt.NDArray[np.float64]:
    """Per-user factors with mean 1: Beta(a, b) draws divided by the Beta's mean (1 when None)."""
    if beta is None:
        return np.ones(users)
    a, b = beta
    out: npt.NDArray[np.float64] = rng.beta(a, b, users) * (a + b) / a
    return out
