"""The file form of a deployment spec's ``analysis`` section: pydantic models, read through
:func:`lockgate.config.load` as part of :class:`lockgate.rollout.spec_schema.SpecFile`.

``to_value`` gives the frozen :class:`~lockgate.rollout.analysis.Analysis`; the policy it chooses
checks its own values (``alpha`` between 0 and 1, ...), and its complaint is reported at
``analysis``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, model_validator
from pydantic import field_validator as validates

from lockgate.config import Schema, at_least, one_of, problem
from lockgate.errors import ValidationError
from lockgate.rollout.analysis import (
    DEFAULT_ERROR_MARGIN,
    DEFAULT_LATENCY_MARGIN,
    Analysis,
    ExternalMetric,
    PrimaryGoal,
)
from lockgate.rollout.policy import policy_for_analysis
from lockgate.stats.generation import GENERATION_METRICS
from lockgate.stats.guardrails import Margin

__all__ = ["AnalysisFile", "SequentialAnalysis", "ThresholdAnalysis"]

NonNegative = Annotated[float, at_least(0)]


class _Schema(Schema):
    null_is_default: ClassVar[bool] = True


class _MarginFile(_Schema):
    """``{relative: 0.1}`` or the one absolute form (``absolute_key``, times ``factor``)."""

    absolute_key: ClassVar[str]
    factor: ClassVar[float] = 1.0
    example: ClassVar[str]
    relative: NonNegative | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [key for key in type(self).model_fields if getattr(self, key) is not None]
        if len(given) != 1:
            keys = ", ".join(sorted(type(self).model_fields))
            raise problem(f"must give exactly one of {keys}", fix=f"e.g. {self.example}")
        return self

    def to_margin(self) -> Margin:
        if self.relative is not None:
            return Margin("relative", self.relative)
        return Margin("absolute", float(getattr(self, self.absolute_key)) * self.factor)


class ErrorMargin(_MarginFile):
    absolute_key: ClassVar[str] = "absolute_pp"
    factor: ClassVar[float] = 0.01
    example: ClassVar[str] = "{absolute_pp: 0.5} or {relative: 0.1}"
    absolute_pp: NonNegative | None = None


class LatencyMargin(_MarginFile):
    absolute_key: ClassVar[str] = "ms"
    example: ClassVar[str] = "{relative: 0.1} or {ms: 20}"
    ms: NonNegative | None = None


class GoalMargin(_MarginFile):
    absolute_key: ClassVar[str] = "absolute"
    example: ClassVar[str] = "{absolute: 0.005} or {relative: 0.02}"
    absolute: NonNegative | None = None


class _ErrorGuard(_Schema):
    max_increase: ErrorMargin | None = None


class _LatencyGuard(_Schema):
    max_increase: LatencyMargin | None = None


class GuardrailsFile(_Schema):
    """Each guardrail: its margin, the default when not given, off when null or false."""

    null_is_a_value: ClassVar[frozenset[str]] = frozenset({"errors", "latency"})
    errors: _ErrorGuard | None = _ErrorGuard()
    latency: _LatencyGuard | None = _LatencyGuard()

    @validates("errors", "latency", mode="before")
    @classmethod
    def _false_is_off(cls, value: Any) -> Any:
        return None if value is False else value

    def margins(self) -> tuple[Margin | None, Margin | None]:
        errors = latency = None
        if self.errors is not None:
            given = self.errors.max_increase
            errors = DEFAULT_ERROR_MARGIN if given is None else given.to_margin()
        if self.latency is not None:
            given_ms = self.latency.max_increase
            latency = DEFAULT_LATENCY_MARGIN if given_ms is None else given_ms.to_margin()
        return errors, latency


class PrimaryFile(_Schema):
    metric: Annotated[
        Literal["conversions", "outcome_mean"],
        one_of(
            "conversions",
            "outcome_mean",
            fix="use conversions (0/1 labels from /feedback) or outcome_mean (values from /feedback)",
        ),
    ] = "conversions"
    direction: Annotated[
        Literal["increase", "decrease"],
        one_of("increase", "decrease", fix="say which way is better for the business, e.g. increase"),
    ] = "increase"
    margin: GoalMargin | None = None
    min_improvement: GoalMargin | None = None
    scale: float | None = None

    @validates("scale")
    @classmethod
    def _positive(cls, scale: float | None) -> float | None:
        if scale is not None and scale <= 0:
            raise problem("must be above 0", fix="give the effect size worth detecting")
        return scale

    def to_value(self) -> PrimaryGoal:
        zero = Margin("absolute", 0.0)
        return PrimaryGoal(
            self.metric,
            self.direction == "increase",
            zero if self.margin is None else self.margin.to_margin(),
            zero if self.min_improvement is None else self.min_improvement.to_margin(),
            self.scale,
        )


class MetricFile(_Schema):
    """A number judged on the candidate (``max`` and/or ``min``): from a metrics provider with a
    ``query``, or, without one, a generation metric lockgate counts itself (``ttft_ms``, ...)."""

    name: str
    query: str | None = None
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _query_or_known(self) -> Self:
        if self.query is None and self.name not in GENERATION_METRICS:
            raise problem(
                f"'{self.name}' needs a query (it is not one of lockgate's generation metrics)",
                fix="give a PromQL query, or use one of " + ", ".join(GENERATION_METRICS),
                at=("query",),
            )
        return self

    @model_validator(mode="after")
    def _has_a_limit(self) -> Self:
        if self.max is None and self.min is None:
            raise problem(
                "needs max or min", fix="e.g. max: 0.05 (the candidate's value must stay at or below)"
            )
        return self


class _AnalysisFile(_Schema):
    """What both policies take: metrics, and scalar options that the policy checks (null: none)."""

    options: ClassVar[tuple[str, ...]]
    metrics: list[MetricFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _new_metric_names(self) -> Self:
        seen: set[str] = set()
        for index, metric in enumerate(self.metrics):
            if not metric.name.replace("_", "").isalnum() or metric.name in seen:
                raise problem(
                    f"'{metric.name}' is not a new name of letters, digits and _",
                    fix="e.g. checkout_errors",
                    at=("metrics", index, "name"),
                )
            seen.add(metric.name)
        return self

    @model_validator(mode="after")
    def _policy_takes_the_values(self) -> Self:
        try:
            policy_for_analysis(self.to_value())
        except ValidationError as exc:
            raise problem(exc.message, fix=exc.hint or "check the values") from None
        return self

    def given_options(self) -> dict[str, float | int | None]:
        return {key: getattr(self, key) for key in self.options if key in self.model_fields_set}

    def external_metrics(self) -> tuple[ExternalMetric, ...]:
        return tuple(ExternalMetric(m.name, m.query, m.max, m.min) for m in self.metrics)

    def to_value(self) -> Analysis:
        raise NotImplementedError


_RENAMED = {
    "latency_tolerance": "guardrails.latency.max_increase (e.g. {relative: 0.2}, or null to switch it off)",
    "error_rate_mde": "guardrails.errors.max_increase (e.g. {absolute_pp: 0.5})",
    "max_samples": "a stage's max_duration_s with on_inconclusive (a stage now advances on evidence)",
}


class SequentialAnalysis(_AnalysisFile):
    options: ClassVar[tuple[str, ...]] = ("alpha", "min_samples", "srm_alpha", "error_scale", "latency_scale")
    null_is_a_value: ClassVar[frozenset[str]] = frozenset(options)
    policy: Literal["sequential"] = "sequential"
    alpha: float | None = None
    min_samples: int | None = None
    srm_alpha: float | None = None
    error_scale: float | None = None
    latency_scale: float | None = None
    guardrails: GuardrailsFile = GuardrailsFile()
    primary: PrimaryFile | None = None
    on_inconclusive: Annotated[
        Literal["rollback", "hold"],
        one_of(
            "rollback",
            "hold",
            fix="rollback sends traffic back to the baseline; hold pauses for a person to decide",
        ),
    ] = "rollback"

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        for old, new in _RENAMED.items():
            if isinstance(data, Mapping) and old in data:
                raise problem("is no longer an option", fix=f"use {new}", at=(old,))
        return data

    def to_value(self) -> Analysis:
        error_margin, latency_margin = self.guardrails.margins()
        primary = None if self.primary is None else self.primary.to_value()
        return Analysis(
            "sequential",
            self.given_options(),
            error_margin,
            latency_margin,
            primary,
            self.on_inconclusive,
            self.external_metrics(),
        )


class ThresholdAnalysis(_AnalysisFile):
    options: ClassVar[tuple[str, ...]] = (
        "max_error_rate_ratio",
        "max_error_rate_increase",
        "max_error_rate",
        "max_p99_latency_ratio",
        "min_requests",
    )
    null_is_a_value: ClassVar[frozenset[str]] = frozenset(options)
    policy: Literal["threshold"]
    max_error_rate_ratio: float | None = None
    max_error_rate_increase: float | None = None
    max_error_rate: float | None = None
    max_p99_latency_ratio: float | None = None
    min_requests: int | None = None

    def to_value(self) -> Analysis:
        return Analysis("threshold", self.given_options(), metrics=self.external_metrics())


AnalysisFile = Annotated[SequentialAnalysis | ThresholdAnalysis, Field(discriminator="policy")]
