"""The deployment spec: which variants, which strategy, how requests are keyed.

Parsed once at the edge from YAML or a dict into frozen dataclasses; all later code trusts it.
Every problem raises :class:`lockgate.errors.ValidationError` whose message starts with the key path
(``strategy.steps[2].weight_percent: must be between 0 and 100``) and whose hint says the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeAlias

import yaml

from lockgate.errors import NotFound, ValidationError
from lockgate.rollout.analysis import Analysis, parse_analysis
from lockgate.rollout.spec_node import Node as _Node
from lockgate.rollout.spec_node import did_you_mean as _did_you_mean
from lockgate.rollout.spec_node import spec_error as _error

__all__ = [
    "AbStrategy",
    "Analysis",
    "BlueGreenStrategy",
    "CanaryStep",
    "CanaryStrategy",
    "DeploymentSpec",
    "DirectStrategy",
    "RollingStrategy",
    "RoutingKey",
    "ShadowStrategy",
    "Strategy",
    "VariantScaling",
    "WarmupChecks",
    "load_spec",
    "parse_spec",
]

NAME_PATTERN = re.compile(r"[a-z0-9_-]{1,63}")
NAME_RULE = "use 1-63 characters from lowercase letters, digits, '-' and '_'"
_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


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
        }


def load_spec(path: str | Path) -> DeploymentSpec:
    """Read and validate a deployment spec from a YAML file."""
    file = Path(path)
    if not file.is_file():
        raise NotFound(f"spec file '{file}' does not exist", hint="check the path")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValidationError(
            f"{file}: is not valid YAML ({exc})", hint="fix the YAML syntax at the line shown"
        ) from exc
    return parse_spec(data)


def parse_spec(data: Any) -> DeploymentSpec:
    """Validate a plain mapping (parsed YAML or JSON) into a :class:`DeploymentSpec`."""
    root = _Node(data, "")
    root.reject_unknown(
        {"name", "variants", "baseline", "candidate", "strategy", "routing_key", "salt", "analysis"}
        | {"scaling"}
    )
    name = root.required_string("name")
    _check_name(name, root.path_of("name"))
    variants_node = root.mapping("variants", required=True)
    variants: dict[str, str] = {}
    for variant, uri in variants_node.data.items():
        path = variants_node.path_of(str(variant))
        _check_name(variant, path)
        if not isinstance(uri, str) or not uri.strip() or any(c.isspace() for c in uri):
            raise _error(path, "must be a model URI with no spaces", "e.g. models:/fraud/3")
        variants[variant] = uri
    if len(variants) < 2:
        raise _error(
            variants_node.path,
            "must name at least two variants",
            "add the baseline and the candidate, e.g. {stable: models:/m/1, canary: models:/m/2}",
        )
    baseline = root.required_string("baseline")
    candidate = root.required_string("candidate")
    for key, value in (("baseline", baseline), ("candidate", candidate)):
        if value not in variants:
            raise _error(
                root.path_of(key),
                f"'{value}' is not a variant",
                f"use one of {', '.join(sorted(variants))}",
            )
    if baseline == candidate:
        raise _error(root.path_of("candidate"), "must differ from baseline", "name the new variant here")
    strategy = _parse_strategy(root.mapping("strategy", required=True))
    routing_key = _parse_routing_key(root.mapping("routing_key"))
    salt = root.string("salt") or ""
    analysis = parse_analysis(root.mapping("analysis"))
    scaling = _parse_scaling(root.mapping("scaling"), variants)
    return DeploymentSpec(name, variants, baseline, candidate, strategy, routing_key, salt, analysis, scaling)


def _parse_scaling(node: _Node, variants: Mapping[str, str]) -> dict[str, VariantScaling]:
    """``scaling: {variant: {replicas: 2}}`` or ``{variant: {autoscaling: {min_replicas: 1,
    max_replicas: 4, target_ongoing_requests: 2}}}``, each with an optional ``num_cpus``."""
    out: dict[str, VariantScaling] = {}
    for variant in node.data:
        if variant not in variants:
            raise _error(
                node.path_of(str(variant)),
                f"'{variant}' is not a variant",
                f"use one of {', '.join(sorted(variants))}{_did_you_mean(str(variant), variants)}",
            )
        entry = node.mapping(str(variant))
        entry.reject_unknown({"replicas", "autoscaling", "num_cpus"})
        replicas = entry.integer("replicas", minimum=1) if entry.data.get("replicas") is not None else None
        num_cpus = entry.optional_number("num_cpus", minimum=0.01)
        auto = entry.mapping("autoscaling")
        auto.reject_unknown({"min_replicas", "max_replicas", "target_ongoing_requests"})
        if not auto.data:
            out[str(variant)] = VariantScaling(replicas=replicas, num_cpus=num_cpus)
            continue
        if replicas is not None:
            raise _error(
                entry.path_of("replicas"),
                "cannot be given with autoscaling",
                "give a fixed 'replicas' or an 'autoscaling' range, not both",
            )
        min_replicas = auto.integer("min_replicas", default=1, minimum=0)
        max_replicas = auto.integer("max_replicas", required=True, minimum=1)
        if max_replicas < min_replicas:
            raise _error(
                auto.path_of("max_replicas"),
                f"must be at least min_replicas ({min_replicas})",
                f"use a value >= {min_replicas}",
            )
        target = auto.optional_number("target_ongoing_requests", minimum=0.01)
        out[str(variant)] = VariantScaling(None, min_replicas, max_replicas, target, num_cpus)
    return out


def _parse_strategy(node: _Node) -> Strategy:
    kind = node.required_string("type")
    parsers = {
        "direct": _parse_direct,
        "canary": _parse_canary,
        "blue_green": _parse_blue_green,
        "rolling": _parse_rolling,
        "shadow": _parse_shadow,
        "ab": _parse_ab,
    }
    if kind not in parsers:
        raise _error(
            node.path_of("type"),
            f"unknown strategy '{kind}'",
            f"use one of {', '.join(parsers)}{_did_you_mean(kind, parsers)}",
        )
    return parsers[kind](node)


def _parse_direct(node: _Node) -> Strategy:
    node.reject_unknown({"type"})
    return DirectStrategy()


def _parse_canary(node: _Node) -> Strategy:
    node.reject_unknown({"type", "steps"})
    items = node.sequence("steps", required=True)
    if not items:
        raise _error(node.path_of("steps"), "must list at least one step", _STEP_EXAMPLE)
    steps: list[CanaryStep] = []
    for index, item in enumerate(items):
        step_node = _Node(item, f"{node.path_of('steps')}[{index}]")
        if isinstance(item, dict) and "pause" in item:
            steps.append(_parse_pause(step_node, steps))
            continue
        step_node.reject_unknown({"weight_percent", "min_duration_s", "min_requests", "max_duration_s"})
        weight = step_node.number("weight_percent", required=True)
        path = step_node.path_of("weight_percent")
        if not 0.0 < weight <= 100.0:
            raise _error(path, "must be between 0 and 100", "give the candidate's share, e.g. 5")
        if abs(weight * 100 - round(weight * 100)) > 1e-6:
            raise _error(path, "must have at most two decimals", "round it, e.g. 0.25")
        step = CanaryStep(
            weight,
            step_node.number("min_duration_s", default=0.0, minimum=0.0),
            step_node.integer("min_requests", default=0, minimum=0),
            step_node.optional_number("max_duration_s", minimum=0.0),
        )
        if step.max_duration_s is not None and step.max_duration_s < step.min_duration_s:
            raise _error(
                step_node.path_of("max_duration_s"),
                f"must be at least min_duration_s ({step.min_duration_s:g})",
                "raise max_duration_s or lower min_duration_s",
            )
        if steps and step.weight_bp <= steps[-1].weight_bp:
            raise _error(
                path,
                f"must be larger than the previous step's {steps[-1].weight_percent}",
                "list steps in increasing weight: a canary never shrinks",
            )
        steps.append(step)
    return CanaryStrategy(tuple(steps))


_STEP_EXAMPLE = "e.g. steps: [{weight_percent: 5, min_duration_s: 60, min_requests: 500}]"


def _parse_pause(step_node: _Node, steps: list[CanaryStep]) -> CanaryStep:
    """``{pause: {}}`` (wait for a person) or ``{pause: {duration_s: 600}}`` (wait that long)."""
    step_node.reject_unknown({"pause"})
    pause = step_node.mapping("pause")  # {pause: {}} and a bare "pause:" read as an empty mapping
    pause.reject_unknown({"duration_s"})
    if not steps:
        raise _error(
            step_node.path_of("pause"),
            "cannot be the first step: a pause holds the previous step's weight",
            "put a step with weight_percent before it, e.g. [{weight_percent: 5}, {pause: {}}]",
        )
    duration_s = pause.number("duration_s", default=0.0, minimum=0.0)
    return CanaryStep(steps[-1].weight_percent, duration_s, 0, None, is_pause=True)


def _parse_blue_green(node: _Node) -> Strategy:
    node.reject_unknown({"type", "warmup", "bake_s", "bake_min_requests", "keep_previous_warm_s"})
    warm = node.mapping("warmup")
    warm.reject_unknown(
        {
            "shadow_fraction",
            "min_requests",
            "min_duration_s",
            "max_error_rate",
            "max_p99_latency_ms",
        }
    )
    defaults = WarmupChecks()
    warmup = WarmupChecks(
        shadow_fraction=warm.fraction("shadow_fraction", default=defaults.shadow_fraction),
        min_requests=warm.integer("min_requests", default=defaults.min_requests, minimum=0),
        min_duration_s=warm.number("min_duration_s", default=defaults.min_duration_s, minimum=0.0),
        max_error_rate=warm.optional_fraction("max_error_rate"),
        max_p99_latency_ms=warm.optional_number("max_p99_latency_ms", minimum=0.0),
    )
    if warmup.shadow_fraction == 0.0 and warmup.min_requests > 0:
        raise _error(
            warm.path_of("shadow_fraction"),
            "is 0, so the candidate would never see the warmup requests it needs",
            "mirror some traffic (e.g. 1.0) or set warmup.min_requests to 0",
        )
    return BlueGreenStrategy(
        warmup=warmup,
        bake_s=node.number("bake_s", default=60.0, minimum=0.0),
        bake_min_requests=node.integer("bake_min_requests", default=0, minimum=0),
        keep_previous_warm_s=node.number("keep_previous_warm_s", default=600.0, minimum=0.0),
    )


def _parse_rolling(node: _Node) -> Strategy:
    node.reject_unknown({"type", "replicas", "batch_size", "min_duration_s", "min_requests"})
    replicas = node.integer("replicas", required=True, minimum=1)
    batch_size = node.integer("batch_size", default=1, minimum=1)
    if batch_size > replicas:
        raise _error(
            node.path_of("batch_size"),
            f"must be at most replicas ({replicas})",
            f"replace at most {replicas} workers at a time",
        )
    return RollingStrategy(
        replicas,
        batch_size,
        node.number("min_duration_s", default=30.0, minimum=0.0),
        node.integer("min_requests", default=0, minimum=0),
    )


def _parse_shadow(node: _Node) -> Strategy:
    node.reject_unknown({"type", "fraction", "min_duration_s", "min_requests", "promote_on_pass"})
    fraction = node.fraction("fraction", default=1.0)
    if fraction == 0.0:
        raise _error(node.path_of("fraction"), "must be above 0", "mirror e.g. 0.1 of requests")
    return ShadowStrategy(
        fraction,
        node.number("min_duration_s", default=300.0, minimum=0.0),
        node.integer("min_requests", default=1000, minimum=0),
        node.boolean("promote_on_pass", default=False),
    )


def _parse_ab(node: _Node) -> Strategy:
    node.reject_unknown({"type", "split_percent", "min_requests", "min_duration_s", "max_duration_s"})
    split = node.number("split_percent", default=50.0)
    if not 0.0 < split < 100.0:
        raise _error(
            node.path_of("split_percent"),
            "must be between 0 and 100 (exclusive)",
            "give the candidate's share, e.g. 50",
        )
    min_duration_s = node.number("min_duration_s", default=0.0, minimum=0.0)
    max_duration_s = node.number("max_duration_s", default=7 * 24 * 3600.0, minimum=0.0)
    if max_duration_s < min_duration_s:
        raise _error(
            node.path_of("max_duration_s"),
            f"must be at least min_duration_s ({min_duration_s})",
            "raise max_duration_s or lower min_duration_s",
        )
    return AbStrategy(
        split,
        node.integer("min_requests", default=1000, minimum=0),
        min_duration_s,
        max_duration_s,
    )


def _parse_routing_key(node: _Node) -> RoutingKey:
    node.reject_unknown({"source", "name"})
    source = node.string("source") or "header"
    if source not in ("header", "field"):
        raise _error(
            node.path_of("source"),
            f"unknown key source '{source}'",
            "use 'header' (a request header) or 'field' (an input field name)",
        )
    default_name = "x-routing-key" if source == "header" else None
    name = node.string("name", required=default_name is None) or default_name or ""
    if source == "header":
        if not _HEADER.fullmatch(name):
            raise _error(node.path_of("name"), "is not a valid header name", "e.g. x-routing-key")
        name = name.lower()
    elif not name.strip():
        raise _error(node.path_of("name"), "must not be empty", "name the input field, e.g. user_id")
    return RoutingKey("header" if source == "header" else "field", name)


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


def _check_name(value: Any, path: str) -> None:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise _error(path, f"{value!r} is not a valid name", NAME_RULE)
