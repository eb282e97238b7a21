"""The ``analysis`` section of a deployment spec: which policy decides, its margins and goal.

Its file form and rules are in :mod:`lockgate.rollout.spec_schema`.

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
    - name: ttft_ms           # no query: a generation metric lockgate counts itself
      max: 250
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lockgate.stats.guardrails import Margin

__all__ = [
    "DEFAULT_ERROR_MARGIN",
    "DEFAULT_LATENCY_MARGIN",
    "Analysis",
    "ExternalMetric",
    "PrimaryGoal",
]

DEFAULT_ERROR_MARGIN = Margin("absolute", 0.005)
"""Half a percentage point more errors is the most a candidate may add by default."""
DEFAULT_LATENCY_MARGIN = Margin("relative", 0.1)
"""10% slower (geometric mean) is the most a candidate may be by default."""


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
    at every look, Argo Rollouts' analysis metric. Without a ``query`` it is one of lockgate's
    own generation metrics (:data:`lockgate.stats.generation.GENERATION_METRICS`), measured on
    what each variant generated since the rollout began."""

    name: str
    query: str | None
    max_value: float | None = None
    min_value: float | None = None

    @property
    def is_generation(self) -> bool:
        return self.query is None

    def query_for(self, deployment: str, variant: str) -> str:
        query = self.query or ""
        return query.replace("{{deployment}}", deployment).replace("{{variant}}", variant)

    def breach(self, value: float) -> str | None:
        """Why ``value`` fails this metric ("" never; None when it passes)."""
        if self.max_value is not None and value > self.max_value:
            return f"above its max {self.max_value:g}"
        if self.min_value is not None and value < self.min_value:
            return f"below its min {self.min_value:g}"
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.query is not None:
            out["query"] = self.query
        if self.max_value is not None:
            out["max"] = self.max_value
        if self.min_value is not None:
            out["min"] = self.min_value
        return out


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
        """The plain form that :func:`lockgate.rollout.spec.parse_spec` reads back to an equal section."""
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
