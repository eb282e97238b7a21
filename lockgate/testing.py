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
from typing import Any

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


@dataclass(frozen=True)
class VariantBehaviour:
    """How a simulated variant serves: its error rate and a log-normal latency."""

    error_rate: float = 0.0
    latency_median_ms: float = 10.0
    latency_sigma: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValidationError(f"error_rate {self.error_rate} is outside [0, 1]", hint="e.g. 0.01 for 1%")
        if self.latency_median_ms <= 0 or self.latency_sigma < 0:
            raise ValidationError(
                "latency_median_ms must be above 0 and latency_sigma at least 0",
                hint="e.g. latency_median_ms=10, latency_sigma=0.25",
            )


class SimulatedTraffic:
    """A seeded source of synthetic requests and of how each variant answers them.

    Requests arrive at ``requests_per_s`` (Poisson) from ``users`` distinct routing keys; a
    ``keyless_fraction`` of them carry no key. Every method takes an optional ``rng``; without one
    it uses the traffic's own generator, seeded with ``seed``.
    """

    def __init__(
        self,
        behaviours: Mapping[str, VariantBehaviour],
        *,
        requests_per_s: float = 100.0,
        users: int = 5_000,
        keyless_fraction: float = 0.0,
        seed: int = 0,
    ) -> None:
        if requests_per_s <= 0 or users < 1 or not 0.0 <= keyless_fraction <= 1.0:
            raise ValidationError(
                "requests_per_s must be above 0, users at least 1, keyless_fraction in [0, 1]",
                hint="e.g. SimulatedTraffic(b, requests_per_s=100, users=5000)",
            )
        self.behaviours = dict(behaviours)
        self.requests_per_s = requests_per_s
        self.users = users
        self.keyless_fraction = keyless_fraction
        self.rng = np.random.default_rng(seed)

    def arrivals(self, duration_s: float, rng: np.random.Generator | None = None) -> int:
        """How many requests arrive in ``duration_s`` seconds."""
        return int((rng or self.rng).poisson(self.requests_per_s * duration_s))

    def keys(self, count: int, rng: np.random.Generator | None = None) -> list[str | None]:
        """Routing keys for ``count`` requests (``None`` for a request without one)."""
        gen = rng or self.rng
        users = gen.integers(0, self.users, size=count)
        keyless = gen.random(count) < self.keyless_fraction
        return [None if no_key else f"user-{u}" for u, no_key in zip(users, keyless, strict=True)]

    def serve(
        self, variant: str, count: int, rng: np.random.Generator | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Latencies (ms) and error flags for ``count`` requests served by ``variant``."""
        if variant not in self.behaviours:
            raise ValidationError(
                f"simulated traffic has no behaviour for variant '{variant}'",
                hint=f"add it; known: {', '.join(sorted(self.behaviours))}",
            )
        behaviour = self.behaviours[variant]
        gen = rng or self.rng
        latencies = behaviour.latency_median_ms * np.exp(behaviour.latency_sigma * gen.standard_normal(count))
        errors = gen.random(count) < behaviour.error_rate
        return latencies, errors
