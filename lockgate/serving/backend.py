"""Where a deployment's variants run: the backend protocol and the embedded (in-process) backend.

A :class:`Backend` loads a variant (blocking, in a worker thread) and says what else it can do:
``has_replicas`` is the capability to run a variant as several replicas and resize them when a
rollout asks (the rolling strategy's batches). The embedded backend runs one copy of each variant
in the serving process and has no replicas (``--workers`` scales the whole server); the Ray Serve
backend (:mod:`lockgate.serving.ray_serve`) runs each variant as a Serve application with its own
replicas. Unloading is the variant's own :meth:`~lockgate.serving.variant.Variant.stop`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from lockgate.errors import Conflict
from lockgate.rollout.spec import VariantScaling
from lockgate.serving.variant import Variant

__all__ = ["Backend", "InProcessBackend", "ScaledVariantLoader", "VariantLoader"]

VariantLoader = Callable[[str, str, str], Variant]
"""Loads (deployment name, variant name, model URI) into a warmed-up variant (blocking)."""

ScaledVariantLoader = Callable[[str, str, str, VariantScaling], Variant]
"""A distributed backend's loader: also given the variant's scaling (replicas, autoscaling)."""


class Backend(Protocol):
    """What the deployment loop needs from the place its variants run."""

    @property
    def has_replicas(self) -> bool:
        """Whether :meth:`resize` can run a variant as a given number of replicas."""
        ...

    @property
    def loads_concurrently(self) -> bool:
        """Whether a spec's variants load at once (each load waits on other machines)."""
        ...

    def load(self, deployment: str, variant: str, uri: str, scaling: VariantScaling) -> Variant:
        """Load ``uri`` as ``deployment``'s ``variant``, warmed up (blocking)."""
        ...

    def resize(self, variant: Variant, scaling: VariantScaling) -> None:
        """Run ``variant`` with ``scaling``'s replicas (blocking; only when :attr:`has_replicas`)."""
        ...


class InProcessBackend:
    """Every variant in this process, one copy each: no replicas to size."""

    has_replicas = False
    loads_concurrently = False

    def __init__(self, load: VariantLoader) -> None:
        self._load = load

    def load(self, deployment: str, variant: str, uri: str, scaling: VariantScaling) -> Variant:
        return self._load(deployment, variant, uri)

    def resize(self, variant: Variant, scaling: VariantScaling) -> None:
        raise Conflict(
            f"variant '{variant.key}' runs in this process, one copy: it has no replicas to resize",
            hint="serve with --backend ray to give each variant its own replicas",
        )
