"""Deployments as the request path and the admin side see them.

- :class:`LiveDeployment` is one deployment on the request path: its loaded variants, the routing
  table in force (one attribute, swapped whole), and the shadow mirror. ``choose`` is a hash and a
  bisect; nothing on the request path touches the store.
- :func:`status_document` and :func:`event_document` are what the admin API answers about them.
- :class:`Deployments` is the small protocol that the admin API, the metrics and the dashboard
  depend on, instead of the class that runs the controller loop
  (:class:`~lockgate.serving.deployment.DeploymentManager`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from lockgate.rollout.router import (
    BUCKETS,
    RoutingTable,
    assign,
    bucket_and_unit,
    random_bucket,
    should_shadow,
)
from lockgate.rollout.spec import DeploymentSpec
from lockgate.serving.mirror import ShadowMirror
from lockgate.serving.signature import Signature
from lockgate.serving.variant import Variant
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.units import UNITS

if TYPE_CHECKING:
    from lockgate.llm.prompt import BoundPrompt
    from lockgate.monitor.capture import TrafficCapture
    from lockgate.monitor.live import LiveDrift
    from lockgate.monitor.timeline import WeightTimeline
    from lockgate.rollout.store import AuditEvent, Deployment

__all__ = ["Deployments", "LiveDeployment", "event_document", "field_routing_key", "status_document"]


@dataclass
class LiveDeployment:
    """A deployment on the request path: its variants and the routing table in force.

    A variant a finished rollout retired is unloaded: it leaves ``variants`` (the table gives it no
    traffic), and its model's name and version and its last counters stay in ``retired`` and
    ``retired_stats``, so the status still shows what it served.
    """

    spec: DeploymentSpec
    variants: dict[str, Variant]
    table: RoutingTable
    phase: str = "pending"
    version: int = 0
    decision: str | None = None  # the policy's latest verdict
    mirror: ShadowMirror = field(default_factory=ShadowMirror)
    _salt: str = ""
    _header: bytes | None = None  # a routing-key header other than x-routing-key, lowercased
    field_name: str | None = None  # the input field whose value is the routing key, if any
    drift: LiveDrift | None = None  # sampled input sketches per variant, when a reference is set
    drift_flagged: set[str] = field(default_factory=set)  # variants whose drift was audited
    capture: TrafficCapture | None = None  # sampled requests for replay, when capture is on
    loaded_at: dict[str, float] = field(default_factory=dict)  # variant -> when its model loaded
    retire_at: dict[str, float] = field(default_factory=dict)  # variant -> when it is unloaded
    retired: dict[str, tuple[str, str]] = field(default_factory=dict)  # unloaded: (model, version)
    retired_stats: dict[str, VariantStats] = field(default_factory=dict)  # unloaded: last counters
    is_paused: bool = False
    paused_until: float | None = None  # a timed pause resumes at the first tick after it
    prompts: dict[str, BoundPrompt] = field(default_factory=dict)  # variant -> its prompt version
    prices: dict[str, float] = field(default_factory=dict)  # variant -> price per 1,000 tokens

    def __post_init__(self) -> None:
        # worked out once: the request path reads attributes instead of the spec's properties
        self._salt = self.spec.routing_salt
        key = self.spec.routing_key
        if key.source == "field":
            self.field_name = key.name
        elif key.name.lower() != "x-routing-key":
            self._header = key.name.lower().encode("latin-1")

    def choose(self, routing_key: str | None) -> tuple[Variant, Variant | None, int]:
        """The variant that answers, the one that gets a shadow copy (or None), and the request's
        analysis unit (a keyed request's comes from its key, so a user stays in one unit).

        The table is read once, so a request is routed wholly by the old table or the new one.
        """
        table = self.table
        if routing_key:
            index, unit = bucket_and_unit(self._salt, routing_key)
        else:
            # no key: any uniform draw will do (traffic splitting, not security)
            draw = random.random()  # noqa: S311
            index, unit = random_bucket(draw), int(draw * BUCKETS * UNITS) % UNITS
        chosen = assign(table, index)
        shadow = None
        if (
            table.shadow_variant is not None
            and table.shadow_variant != chosen
            and should_shadow(table, index)
        ):
            shadow = self.variants[table.shadow_variant]
        return self.variants[chosen], shadow, unit

    def name_of(self, variant: Variant) -> str | None:
        """The name ``variant`` is served under here; None when it is not (any more) one of ours.

        By identity, not ``id()``: a variant remembered from before a redeploy may be gone, and its
        id reused by another object.
        """
        for name, candidate in self.variants.items():
            if candidate is variant:
                return name
        return None

    def routing_key(self, headers: list[tuple[bytes, bytes]], default: bytes | None) -> str | None:
        """The request's key from the header the spec names (``x-routing-key`` by default)."""
        wanted = self._header
        if wanted is None:
            return default.decode("latin-1") if default is not None else None
        for name, value in headers:
            if name == wanted:
                return value.decode("latin-1")
        return None

    def llm_of(self, variant: Variant) -> tuple[BoundPrompt | None, float | None]:
        """The prompt version (fetched at load) and the price per 1,000 tokens that the spec's
        ``llm:`` section gives ``variant``."""
        if not (self.prompts or self.prices):
            return None, None
        name = self.name_of(variant)
        if name is None:
            return None, None
        return self.prompts.get(name), self.prices.get(name)

    def model_of(self, variant: str) -> tuple[str, str]:
        """(model name, version) that ``variant`` serves, or served before it was unloaded."""
        served = self.variants.get(variant)
        if served is not None:
            return served.model_name, served.model_version
        return self.retired.get(variant, ("", ""))

    def unload(self, variant: str) -> Variant | None:
        """Take ``variant`` off this deployment (its model is stopped by the caller), keeping its
        model's name and its last counters for the status."""
        served = self.variants.pop(variant, None)
        if served is not None:
            self.retired[variant] = (served.model_name, served.model_version)
            self.retired_stats[variant] = served.snapshot()
            self.loaded_at.pop(variant, None)
        self.retire_at.pop(variant, None)
        return served

    def snapshot(self) -> dict[str, VariantStats]:
        counted = {name: stats.copy() for name, stats in self.retired_stats.items()}
        return {**counted, **{name: variant.snapshot() for name, variant in self.variants.items()}}


def field_routing_key(inputs: Any, signature: Signature, name: str) -> str | None:
    """The routing key in a decoded request's input field ``name`` (its first row), or None.

    Whole numbers give the same key as integers and floats (``42`` and ``42.0`` are one user).
    """
    value: Any = None
    if isinstance(inputs, np.ndarray):
        if inputs.ndim == 2 and len(inputs) and name in signature.column_names:
            value = inputs[0, signature.column_names.index(name)]
    elif hasattr(inputs, "columns") and name in inputs.columns and len(inputs):
        value = inputs[name].iloc[0]
    if value is None:
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def status_document(
    deployment: Deployment, stats: Mapping[str, VariantStats], live: LiveDeployment
) -> dict[str, Any]:
    """The admin API's status of a deployment: its stored state, each variant's counters (``stats``,
    summed over the workers) and what this server serves (loaded when, retired when, the mirror,
    drift and capture)."""
    state = deployment.state
    variants = {}
    for variant_name, uri in deployment.spec.variants.items():
        counted = stats[variant_name]
        model_name, model_version = live.model_of(variant_name)
        variants[variant_name] = {
            "model_uri": uri,
            "model_name": model_name,
            "model_version": model_version,
            "weight_percent": state.weight_of(variant_name) / 100.0,
            "loaded_at": live.loaded_at.get(variant_name),  # None: unloaded (retired)
            "retire_at": live.retire_at.get(variant_name),  # loaded, and unloaded then
            "requests": counted.requests,
            "errors": counted.errors,
            "error_rate": counted.error_rate,
            "p50_ms": counted.latency.quantile(0.5) if counted.requests else None,
            "p99_ms": counted.latency.quantile(0.99) if counted.requests else None,
            "outcomes": {
                "n": counted.outcome.count,
                "mean": counted.outcome.mean if counted.outcome.count else None,
                "std": counted.outcome.std if counted.outcome.count > 1 else None,
            },
            "conversions": {
                "n": counted.conversions.trials,
                "successes": counted.conversions.successes,
                "rate": counted.conversions.rate if counted.conversions.trials else None,
            },
            # a generative variant's LLM metrics, by their guardrail names (None for other models)
            "llm": None if counted.generation is None else counted.generation.values(),
        }
    verdict = state.last_verdict
    return {
        "name": deployment.name,
        "phase": state.phase.value,
        "strategy": deployment.spec.strategy.kind,
        "baseline": deployment.spec.baseline,
        "candidate": deployment.spec.candidate,
        "stage": state.stage_index + 1,
        "reason": state.reason,
        "paused_until": live.paused_until,
        "version": deployment.version,
        "updated_at": deployment.updated_at,
        "variants": variants,
        "shadow": {
            "variant": state.shadow_variant,
            "fraction": state.shadow_fraction,
            **live.mirror.summary(),
        },
        "drift": live.drift.summary() if live.drift is not None else None,
        "capture": live.capture.summary() if live.capture is not None else None,
        "verdict": None
        if verdict is None
        else {
            "decision": verdict.decision.value,
            "reasons": list(verdict.reasons),
            "numbers": {k: v for k, v in verdict.numbers.items() if np.isfinite(v)},
        },
    }


def event_document(event: AuditEvent) -> dict[str, Any]:
    """One audit event as the admin API's history lists it."""
    return {
        "id": event.id,
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "reason": event.reason,
        "from_phase": event.from_phase,
        "to_phase": event.to_phase,
        "numbers": dict(event.numbers),
    }


class Deployments(Protocol):
    """The deployments a server runs, as the admin API, the metrics and the dashboard see them."""

    @property
    def live(self) -> Mapping[str, LiveDeployment]:
        """The deployments served here, by name."""
        ...

    @property
    def store_error(self) -> str | None:
        """Why the controller waits (the store is unreachable), or None."""
        ...

    @property
    def timeline(self) -> WeightTimeline:
        """Each deployment's weights over time."""
        ...

    async def deploy(self, spec: DeploymentSpec, *, actor: str) -> Deployment:
        """Load the spec's variants, then store it (new, or a new rollout of a finished one)."""
        ...

    async def command(
        self,
        name: str,
        verb: str,
        *,
        actor: str,
        reason: str | None = None,
        duration_s: float | None = None,
    ) -> Deployment:
        """Start, promote, pause, resume or roll back now."""
        ...

    async def status(self, name: str) -> dict[str, Any]:
        """The deployment's state with live per-variant numbers and the shadow comparison."""
        ...

    async def history(self, name: str, *, after_id: int = 0) -> list[dict[str, Any]]:
        """The audit log (events after ``after_id``)."""
        ...

    async def variant_stats(self, name: str) -> tuple[Deployment, dict[str, VariantStats]]:
        """The deployment and each variant's counters, summed over the workers."""
        ...
