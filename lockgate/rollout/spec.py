"""The deployment spec: which variants, which strategy, how requests are keyed.

Parsed once at the edge from YAML or a dict into frozen dataclasses; all later code trusts it. The
file form and its rules are :mod:`lockgate.rollout.spec_schema`, read by :mod:`lockgate.config`:
every problem raises :class:`lockgate.errors.ValidationError` whose message names the key path
(``strategy.steps[2].weight_percent: must be between 0 and 100``, after ``deploy.yaml line 12:``
when it comes from a file) and whose hint says the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeAlias

from lockgate.rollout.analysis import Analysis

__all__ = [
    "UPSTREAM_PREFIX",
    "AbStrategy",
    "Analysis",
    "BlueGreenStrategy",
    "CanaryStep",
    "CanaryStrategy",
    "DeploymentSpec",
    "DirectStrategy",
    "LlmVariant",
    "RollingStrategy",
    "RoutingKey",
    "ShadowStrategy",
    "Strategy",
    "UpstreamEndpoint",
    "Upstreams",
    "VariantScaling",
    "WarmupChecks",
    "load_spec",
    "parse_spec",
]

NAME_PATTERN = re.compile(r"[a-z0-9_-]{1,63}")
NAME_RULE = "use 1-63 characters from lowercase letters, digits, '-' and '_'"
UPSTREAM_PREFIX = "upstream:"  # a variant URI ``upstream:NAME`` is served by the endpoint NAME


@dataclass(frozen=True)
class CanaryStep:
    """One canary step: the candidate's share, how long and how many requests it must see, and how
    long it may wait for evidence (``max_duration_s``; default three times ``min_duration_s``).

    ``is_pause``: a ``pause:`` entry (Argo Rollouts' step of that name), which holds the previous
    step's share: with no duration it waits for a person (``lockgate rollout promote``), with one
    it waits that long.
    """

    weight_percent: float
    min_duration_s: float = 0.0
    min_requests: int = 0
    max_duration_s: float | None = None
    is_pause: bool = False

    @property
    def needs_approval(self) -> bool:
        """A pause with no duration: only ``lockgate rollout promote`` moves the rollout on."""
        return self.is_pause and self.min_duration_s == 0

    @property
    def weight_bp(self) -> int:
        """The candidate's share in basis points (1/100 of a percent)."""
        return round(self.weight_percent * 100)


@dataclass(frozen=True)
class DirectStrategy:
    """Switch all traffic to the candidate at once, with no analysis."""

    kind: ClassVar[str] = "direct"


@dataclass(frozen=True)
class CanaryStrategy:
    """Grow the candidate's share step by step, analysing between steps."""

    steps: tuple[CanaryStep, ...]
    kind: ClassVar[str] = "canary"


@dataclass(frozen=True)
class WarmupChecks:
    """What a blue-green candidate must pass on mirrored traffic before it takes all traffic."""

    shadow_fraction: float = 1.0
    min_requests: int = 100
    min_duration_s: float = 30.0
    max_error_rate: float | None = None
    max_p99_latency_ms: float | None = None


@dataclass(frozen=True)
class BlueGreenStrategy:
    """Warm the candidate on mirrored traffic, switch everything at once, keep the old one warm."""

    warmup: WarmupChecks = field(default_factory=WarmupChecks)
    bake_s: float = 60.0
    bake_min_requests: int = 0
    keep_previous_warm_s: float = 600.0
    kind: ClassVar[str] = "blue_green"


@dataclass(frozen=True)
class RollingStrategy:
    """Replace ``replicas`` baseline workers with candidate workers ``batch_size`` at a time."""

    replicas: int
    batch_size: int = 1
    min_duration_s: float = 30.0
    min_requests: int = 0
    kind: ClassVar[str] = "rolling"


@dataclass(frozen=True)
class ShadowStrategy:
    """Mirror a fraction of requests to the candidate; its answers are compared, never returned."""

    fraction: float = 1.0
    min_duration_s: float = 300.0
    min_requests: int = 1000
    promote_on_pass: bool = False
    kind: ClassVar[str] = "shadow"


@dataclass(frozen=True)
class AbStrategy:
    """A fixed split until the policy decides or ``max_duration_s`` passes (the baseline stays)."""

    split_percent: float = 50.0
    min_requests: int = 1000
    min_duration_s: float = 0.0
    max_duration_s: float = 7 * 24 * 3600.0
    kind: ClassVar[str] = "ab"


Strategy: TypeAlias = (
    DirectStrategy | CanaryStrategy | BlueGreenStrategy | RollingStrategy | ShadowStrategy | AbStrategy
)


@dataclass(frozen=True)
class RoutingKey:
    """Where a request's routing key comes from: a header, or a field of the request's input."""

    source: Literal["header", "field"] = "header"
    name: str = "x-routing-key"


@dataclass(frozen=True)
class VariantScaling:
    """How many copies of one variant a distributed backend runs (``lockgate serve --backend ray``).

    ``replicas`` is a fixed count; ``min_replicas``/``max_replicas`` with
    ``target_ongoing_requests`` (requests in flight per replica) turn autoscaling on instead.
    ``num_cpus`` is what each replica reserves (fractions share a core). The embedded backend
    serves one copy of every variant in its own process and ignores these.
    """

    replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_ongoing_requests: float | None = None
    num_cpus: float | None = None

    @property
    def is_autoscaling(self) -> bool:
        return self.max_replicas is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.replicas is not None:
            out["replicas"] = self.replicas
        if self.is_autoscaling:
            auto: dict[str, Any] = {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas}
            if self.target_ongoing_requests is not None:
                auto["target_ongoing_requests"] = self.target_ongoing_requests
            out["autoscaling"] = auto
        if self.num_cpus is not None:
            out["num_cpus"] = self.num_cpus
        return out


@dataclass(frozen=True)
class UpstreamEndpoint:
    """An OpenAI-compatible endpoint (vLLM, llama.cpp, Ollama, a hosted API) that serves a variant.

    ``url`` is the API's base (``http://10.0.0.5:8000/v1``), ``model`` the name it is asked for;
    the API key is read from the environment variable ``api_key_env`` (never from the spec).
    ``connect_timeout_s`` bounds connecting, ``timeout_s`` each wait for the next byte; a failed
    connection or a 502/503/504 before any answer is tried again up to ``retries`` times, while
    retries stay under ``retry_budget`` of the requests (a dead upstream is not hammered).
    """

    url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    retries: int = 2
    retry_budget: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url, "model": self.model}
        if self.api_key_env is not None:
            out["api_key_env"] = self.api_key_env
        out.update(
            timeout_s=self.timeout_s,
            connect_timeout_s=self.connect_timeout_s,
            retries=self.retries,
            retry_budget=self.retry_budget,
        )
        return out


@dataclass(frozen=True)
class Upstreams:
    """The spec's ``upstreams`` section: the hosts lockgate may forward to, and the endpoints."""

    allowed_hosts: tuple[str, ...] = ()
    endpoints: Mapping[str, UpstreamEndpoint] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed_hosts": list(self.allowed_hosts),
            "endpoints": {name: endpoint.to_dict() for name, endpoint in self.endpoints.items()},
        }


@dataclass(frozen=True)
class LlmVariant:
    """What a generative variant adds to its model (the spec's ``llm:`` section, per variant).

    ``prompt``: a prompt registry reference (``support@2``, ``support@champion``) whose template
    is rendered for every request this variant answers (see :mod:`lockgate.llm.prompt`);
    ``variables``: template variables fixed for the variant (a request cannot override them);
    ``price_per_1k_tokens``: what 1,000 tokens (prompt and completion) cost, for the cost metrics.
    """

    prompt: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    price_per_1k_tokens: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.prompt is not None:
            out["prompt"] = self.prompt
        if self.variables:
            out["variables"] = dict(self.variables)
        if self.price_per_1k_tokens is not None:
            out["price_per_1k_tokens"] = self.price_per_1k_tokens
        return out


@dataclass(frozen=True)
class DeploymentSpec:
    """A deployment: named variants (model URIs), the baseline and candidate, and the strategy."""

    name: str
    variants: Mapping[str, str]
    baseline: str
    candidate: str
    strategy: Strategy
    routing_key: RoutingKey = field(default_factory=RoutingKey)
    salt: str = ""
    analysis: Analysis = field(default_factory=Analysis)
    scaling: Mapping[str, VariantScaling] = field(default_factory=dict)
    upstreams: Upstreams = field(default_factory=Upstreams)
    llm: Mapping[str, LlmVariant] = field(default_factory=dict)

    def upstream_of(self, variant: str) -> UpstreamEndpoint | None:
        """The endpoint that serves ``variant`` (its URI is ``upstream:NAME``), or None for a model."""
        uri = self.variants[variant]
        if not uri.startswith(UPSTREAM_PREFIX):
            return None
        return self.upstreams.endpoints.get(uri[len(UPSTREAM_PREFIX) :])

    def scaling_of(self, variant: str) -> VariantScaling:
        """The replicas and autoscaling asked for ``variant`` (defaults when the spec says none)."""
        return self.scaling.get(variant, VariantScaling())

    @property
    def routing_salt(self) -> str:
        """The salt mixed into every bucket hash: the spec's, or the deployment name."""
        return self.salt or self.name

    def to_dict(self) -> dict[str, Any]:
        """The plain form :func:`parse_spec` reads back to an equal spec."""
        return {
            "name": self.name,
            "variants": dict(self.variants),
            "baseline": self.baseline,
            "candidate": self.candidate,
            "strategy": _strategy_to_dict(self.strategy),
            "routing_key": {"source": self.routing_key.source, "name": self.routing_key.name},
            "salt": self.salt,
            "analysis": self.analysis.to_dict(),
            # only when given: specs stored before scaling existed read back unchanged
            **({"scaling": {v: c.to_dict() for v, c in self.scaling.items()}} if self.scaling else {}),
            **({"upstreams": self.upstreams.to_dict()} if self.upstreams != Upstreams() else {}),
            **({"llm": {v: c.to_dict() for v, c in self.llm.items()}} if self.llm else {}),
        }


def load_spec(path: str | Path) -> DeploymentSpec:
    """Read and validate a deployment spec from a YAML file; a mistake names its line."""
    from lockgate.config import read_yaml

    return _validated(read_yaml(Path(path), what="spec file", hint="check the path"))


def parse_spec(data: Any) -> DeploymentSpec:
    """Validate a plain mapping (parsed YAML or JSON) into a :class:`DeploymentSpec`."""
    return _validated(data)


def _validated(source: Any) -> DeploymentSpec:
    # the file form (pydantic) is imported on first use: the pure core that only reads specs stays light
    from lockgate.config import load
    from lockgate.rollout.spec_schema import SpecFile

    spec = load(SpecFile, source, root="spec", docs="docs/rollouts.md", example="examples/specs/canary.yaml")
    return spec.to_value()


def _strategy_to_dict(strategy: Strategy) -> dict[str, Any]:
    out: dict[str, Any] = {"type": strategy.kind}
    if isinstance(strategy, CanaryStrategy):
        out["steps"] = [
            {"pause": {"duration_s": s.min_duration_s} if s.min_duration_s else {}}
            if s.is_pause
            else {
                "weight_percent": s.weight_percent,
                "min_duration_s": s.min_duration_s,
                "min_requests": s.min_requests,
                **({"max_duration_s": s.max_duration_s} if s.max_duration_s is not None else {}),
            }
            for s in strategy.steps
        ]
    elif isinstance(strategy, BlueGreenStrategy):
        w = strategy.warmup
        out["warmup"] = {
            "shadow_fraction": w.shadow_fraction,
            "min_requests": w.min_requests,
            "min_duration_s": w.min_duration_s,
        }
        if w.max_error_rate is not None:
            out["warmup"]["max_error_rate"] = w.max_error_rate
        if w.max_p99_latency_ms is not None:
            out["warmup"]["max_p99_latency_ms"] = w.max_p99_latency_ms
        out.update(
            bake_s=strategy.bake_s,
            bake_min_requests=strategy.bake_min_requests,
            keep_previous_warm_s=strategy.keep_previous_warm_s,
        )
    elif isinstance(strategy, RollingStrategy):
        out.update(
            replicas=strategy.replicas,
            batch_size=strategy.batch_size,
            min_duration_s=strategy.min_duration_s,
            min_requests=strategy.min_requests,
        )
    elif isinstance(strategy, ShadowStrategy):
        out.update(
            fraction=strategy.fraction,
            min_duration_s=strategy.min_duration_s,
            min_requests=strategy.min_requests,
            promote_on_pass=strategy.promote_on_pass,
        )
    elif isinstance(strategy, AbStrategy):
        out.update(
            split_percent=strategy.split_percent,
            min_requests=strategy.min_requests,
            min_duration_s=strategy.min_duration_s,
            max_duration_s=strategy.max_duration_s,
        )
    return out
