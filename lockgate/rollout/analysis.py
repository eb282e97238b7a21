"""The ``analysis`` section of a deployment spec: which policy decides, its margins and goal.

```yaml
analysis:
  policy: sequential          # or threshold
  alpha: 0.05                 # the chance of a wrong decision over the whole rollout
  guardrails:
    errors:  {max_increase: {absolute_pp: 0.5}}   # or {relative: 0.1}; null switches it off
    latency: {max_increase: {relative: 0.1}}      # or {ms: 20}; null switches it off
  primary:                    # the business metric, from /feedback
    metric: conversions       # or outcome_mean
    direction: increase       # which way is better
    margin: {absolute: 0.005} # canary: how much worse it may be (non-inferiority)
    min_improvement: {relative: 0.02}  # A/B: smaller gains are not worth waiting for (futility)
  on_inconclusive: rollback   # at a stage's max_duration_s without evidence: rollback or hold
  metrics:                    # numbers from a metrics provider (Prometheus), either policy
    - name: checkout_errors
      query: 'sum(rate(shop_errors_total{variant="{{variant}}"}[1m]))'   # once per variant
      max: 0.05               # the candidate's value must stay at or below (or min: above)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lockgate.errors import ValidationError
from lockgate.rollout.spec_node import Node, did_you_mean, spec_error
from lockgate.stats.guardrails import Margin

__all__ = [
    "DEFAULT_ERROR_MARGIN",
    "DEFAULT_LATENCY_MARGIN",
    "Analysis",
    "ExternalMetric",
    "PrimaryGoal",
    "parse_analysis",
]

DEFAULT_ERROR_MARGIN = Margin("absolute", 0.005)
"""Half a percentage point more errors is the most a candidate may add by default."""
DEFAULT_LATENCY_MARGIN = Margin("relative", 0.1)
"""10% slower (geometric mean) is the most a candidate may be by default."""

_OPTIONS: Mapping[str, Mapping[str, type]] = {
    "sequential": {
        "alpha": float,
        "min_samples": int,
        "srm_alpha": float,
        "error_scale": float,
        "latency_scale": float,
    },
    "threshold": {
        "max_error_rate_ratio": float,
        "max_error_rate_increase": float,
        "max_error_rate": float,
        "max_p99_latency_ratio": float,
        "min_requests": int,
    },
}
_SEQUENTIAL_ONLY = {"guardrails", "primary", "on_inconclusive"}
_RENAMED = {
    "latency_tolerance": "guardrails.latency.max_increase (e.g. {relative: 0.2}, or null to switch it off)",
    "error_rate_mde": "guardrails.errors.max_increase (e.g. {absolute_pp: 0.5})",
    "max_samples": "a stage's max_duration_s with on_inconclusive (a stage now advances on evidence)",
}


@dataclass(frozen=True)
class PrimaryGoal:
    """The business metric: what is measured, which way is better, and the margins.

    A canary treats it as a guardrail (the candidate may be at most ``margin`` worse); an A/B test
    decides on it (promote when the candidate is better, stop when ``min_improvement`` is ruled out).
    """

    metric: Literal["conversions", "outcome_mean"] = "conversions"
    higher_is_better: bool = True
    margin: Margin = field(default_factory=lambda: Margin("absolute", 0.0))
    min_improvement: Margin = field(default_factory=lambda: Margin("absolute", 0.0))
    scale: float | None = None

    def mixing_scale(self) -> float:
        """The effect size the interval is tightest for: the given scale, else a margin, else 1%."""
        if self.scale is not None:
            return self.scale
        for margin in (self.margin, self.min_improvement):
            if margin.kind == "absolute" and margin.value > 0:
                return margin.value
        return 0.01

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "direction": "increase" if self.higher_is_better else "decrease",
            "margin": _margin_to_dict(self.margin, absolute_key="absolute"),
            "min_improvement": _margin_to_dict(self.min_improvement, absolute_key="absolute"),
        }
        if self.scale is not None:
            out["scale"] = self.scale
        return out


@dataclass(frozen=True)
class ExternalMetric:
    """A number a metrics provider computes per variant (``{{variant}}`` and ``{{deployment}}`` in
    ``query`` are filled in), judged on the candidate against ``max_value`` and/or ``min_value``
    at every look, Argo Rollouts' analysis metric."""

    name: str
    query: str
    max_value: float | None = None
    min_value: float | None = None

    def query_for(self, deployment: str, variant: str) -> str:
        return self.query.replace("{{deployment}}", deployment).replace("{{variant}}", variant)

    def breach(self, value: float) -> str | None:
        """Why ``value`` fails this metric ("" never; None when it passes)."""
        if self.max_value is not None and value > self.max_value:
            return f"above its max {self.max_value:g}"
        if self.min_value is not None and value < self.min_value:
            return f"below its min {self.min_value:g}"
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "query": self.query}
        if self.max_value is not None:
            out["max"] = self.max_value
        if self.min_value is not None:
            out["min"] = self.min_value
        return out


def _metrics(node: Node, items: list[Any]) -> tuple[ExternalMetric, ...]:
    out: list[ExternalMetric] = []
    for index, item in enumerate(items):
        metric = Node(item, f"{node.path_of('metrics')}[{index}]")
        metric.reject_unknown({"name", "query", "max", "min"})
        name = metric.required_string("name")
        if not name.replace("_", "").isalnum() or name in {m.name for m in out}:
            raise spec_error(
                metric.path_of("name"),
                f"'{name}' is not a new name of letters, digits and _",
                "e.g. checkout_errors",
            )
        found = ExternalMetric(
            name,
            metric.required_string("query"),
            metric.optional_number("max"),
            metric.optional_number("min"),
        )
        if found.max_value is None and found.min_value is None:
            raise spec_error(
                metric.path,
                "needs max or min",
                "e.g. max: 0.05 (the candidate's value must stay at or below)",
            )
        out.append(found)
    return tuple(out)


@dataclass(frozen=True)
class Analysis:
    """How the numbers decide: ``sequential`` (anytime-valid, margins, the default) or
    ``threshold`` (fixed limits on point estimates), with that policy's scalar options."""

    policy: Literal["sequential", "threshold"] = "sequential"
    options: Mapping[str, float | int | None] = field(default_factory=dict)
    error_margin: Margin | None = DEFAULT_ERROR_MARGIN
    latency_margin: Margin | None = DEFAULT_LATENCY_MARGIN
    primary: PrimaryGoal | None = None
    on_inconclusive: Literal["rollback", "hold"] = "rollback"
    metrics: tuple[ExternalMetric, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The plain form :func:`parse_analysis` reads back to an equal section."""
        out: dict[str, Any] = {"policy": self.policy, **self.options}
        if self.metrics:
            out["metrics"] = [m.to_dict() for m in self.metrics]
        if self.policy != "sequential":
            return out
        out["guardrails"] = {
            "errors": None
            if self.error_margin is None
            else {"max_increase": _margin_to_dict(self.error_margin, absolute_key="absolute_pp")},
            "latency": None
            if self.latency_margin is None
            else {"max_increase": _margin_to_dict(self.latency_margin, absolute_key="ms")},
        }
        if self.primary is not None:
            out["primary"] = self.primary.to_dict()
        out["on_inconclusive"] = self.on_inconclusive
        return out


def _margin_to_dict(margin: Margin, *, absolute_key: str) -> dict[str, float]:
    if margin.kind == "relative":
        return {"relative": margin.value}
    value = margin.value * 100 if absolute_key == "absolute_pp" else margin.value
    return {absolute_key: value}


def _margin(node: Node, *, absolute_keys: Mapping[str, float], example: str) -> Margin:
    """``{relative: 0.1}`` or one absolute form; ``absolute_keys`` maps each name to its factor."""
    allowed = {"relative", *absolute_keys}
    node.reject_unknown(allowed)
    given = [key for key in allowed if node.data.get(key) is not None]
    if len(given) != 1:
        raise spec_error(
            node.path,
            f"must give exactly one of {', '.join(sorted(allowed))}",
            f"e.g. {example}",
        )
    key = given[0]
    value = node.number(key, minimum=0.0)
    if key == "relative":
        return Margin("relative", value)
    return Margin("absolute", value * absolute_keys[key])


def _guardrail(
    node: Node, key: str, default: Margin, absolute_keys: Mapping[str, float], example: str
) -> Margin | None:
    if key in node.data and node.data[key] in (None, False):
        return None  # switched off
    guard = node.mapping(key)
    guard.reject_unknown({"max_increase"})
    if guard.data.get("max_increase") is None:
        return default
    return _margin(guard.mapping("max_increase"), absolute_keys=absolute_keys, example=example)


def _primary(node: Node) -> PrimaryGoal:
    node.reject_unknown({"metric", "direction", "margin", "min_improvement", "scale"})
    metric = node.choice(
        "metric",
        ("conversions", "outcome_mean"),
        default="conversions",
        fix="use conversions (0/1 labels from /feedback) or outcome_mean (values from /feedback)",
    )
    direction = node.choice(
        "direction",
        ("increase", "decrease"),
        default="increase",
        fix="say which way is better for the business, e.g. increase for conversions",
    )
    absolute = {"absolute": 1.0}
    zero = Margin("absolute", 0.0)
    margin = (
        _margin(node.mapping("margin"), absolute_keys=absolute, example="{absolute: 0.005}")
        if node.data.get("margin") is not None
        else zero
    )
    min_improvement = (
        _margin(node.mapping("min_improvement"), absolute_keys=absolute, example="{relative: 0.02}")
        if node.data.get("min_improvement") is not None
        else zero
    )
    scale = node.optional_number("scale")
    if scale is not None and scale <= 0:
        raise spec_error(node.path_of("scale"), "must be above 0", "give the effect size worth detecting")
    return PrimaryGoal(
        "conversions" if metric == "conversions" else "outcome_mean",
        direction == "increase",
        margin,
        min_improvement,
        scale,
    )


def parse_analysis(node: Node) -> Analysis:
    """Read and validate the ``analysis`` section (missing: the sequential defaults)."""
    policy = node.string("policy") or "sequential"
    if policy not in _OPTIONS:
        raise spec_error(
            node.path_of("policy"),
            f"unknown policy '{policy}'{did_you_mean(policy, _OPTIONS)}",
            "use sequential (anytime-valid, the default) or threshold",
        )
    for old, new in _RENAMED.items():
        if old in node.data and policy == "sequential":
            raise spec_error(node.path_of(old), "is no longer an option", f"use {new}")
    kinds = _OPTIONS[policy]
    node.reject_unknown({"policy", "metrics", *kinds, *(_SEQUENTIAL_ONLY if policy == "sequential" else ())})
    metrics = _metrics(node, node.sequence("metrics"))
    options: dict[str, float | int | None] = {}
    for key, kind in kinds.items():
        if key not in node.data:
            continue
        if node.data[key] is None:
            options[key] = None
        elif kind is int:
            options[key] = node.integer(key)
        else:
            options[key] = node.number(key)
    analysis = Analysis("sequential" if policy == "sequential" else "threshold", options, metrics=metrics)
    if policy == "sequential":
        guards = node.mapping("guardrails")
        guards.reject_unknown({"errors", "latency"})
        on_inconclusive = node.choice(
            "on_inconclusive",
            ("rollback", "hold"),
            default="rollback",
            fix="rollback sends traffic back to the baseline; hold pauses for a person to decide",
        )
        analysis = Analysis(
            "sequential",
            options,
            _guardrail(
                guards,
                "errors",
                DEFAULT_ERROR_MARGIN,
                {"absolute_pp": 0.01},
                "{absolute_pp: 0.5} or {relative: 0.1}",
            ),
            _guardrail(guards, "latency", DEFAULT_LATENCY_MARGIN, {"ms": 1.0}, "{relative: 0.1} or {ms: 20}"),
            _primary(node.mapping("primary")) if node.data.get("primary") is not None else None,
            "hold" if on_inconclusive == "hold" else "rollback",
            metrics,
        )
    from lockgate.rollout.policy import policy_for_analysis  # the policies validate their values

    try:
        policy_for_analysis(analysis)
    except ValidationError as exc:
        raise spec_error(node.path or "analysis", exc.message, exc.hint or "check the values") from None
    return analysis
