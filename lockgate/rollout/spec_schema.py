"""The file form of a deployment spec: pydantic models of the YAML (or JSON) a person writes.

Read through :func:`lockgate.config.load`, so every mistake names its key path, its line when it
comes from a file, and the fix; ``to_value`` turns a valid file into the frozen values of
:mod:`lockgate.rollout.spec` and :mod:`lockgate.rollout.analysis`, which the rest of lockgate uses.
A ``null`` means "not given" (the default), except where it has a meaning of its own (in the
``analysis`` section, :mod:`lockgate.rollout.analysis_schema`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator
from pydantic import field_validator as validates

from lockgate.config import Schema, at_least, did_you_mean, problem
from lockgate.rollout.analysis_schema import AnalysisFile, SequentialAnalysis
from lockgate.rollout.spec import (
    NAME_PATTERN,
    NAME_RULE,
    UPSTREAM_PREFIX,
    AbStrategy,
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    DeploymentSpec,
    DirectStrategy,
    LlmVariant,
    RollingStrategy,
    RoutingKey,
    ShadowStrategy,
    Strategy,
    UpstreamEndpoint,
    Upstreams,
    VariantScaling,
    WarmupChecks,
)

__all__ = ["SpecFile"]

_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_STEP_EXAMPLE = "e.g. steps: [{weight_percent: 5, min_duration_s: 60, min_requests: 500}]"


class _Schema(Schema):
    null_is_default: ClassVar[bool] = True


def _name(value: str) -> str:
    if not NAME_PATTERN.fullmatch(value):
        raise problem(f"{value!r} is not a valid name", fix=NAME_RULE)
    return value


def _model_uri(value: str) -> str:
    if not value.strip() or any(c.isspace() for c in value):
        raise problem("must be a model URI with no spaces", fix="e.g. models:/fraud/3")
    return value


def _fraction(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise problem("must be between 0 and 1", fix="e.g. 0.1 for 10%")
    return value


Name = Annotated[str, AfterValidator(_name)]
ModelUri = Annotated[str, AfterValidator(_model_uri)]
Fraction = Annotated[float, AfterValidator(_fraction)]
NonNegative = Annotated[float, at_least(0)]
Count = Annotated[int, at_least(0)]
Positive = Annotated[int, at_least(1)]
Amount = Annotated[float, at_least(0.01)]  # CPUs or requests in flight: fractions from 0.01


# -- strategies -------------------------------------------------------------------------------------
class WeightStep(_Schema):
    weight_percent: float
    min_duration_s: NonNegative = 0.0
    min_requests: Count = 0
    max_duration_s: NonNegative | None = None

    @validates("weight_percent")
    @classmethod
    def _share(cls, weight: float) -> float:
        if not 0.0 < weight <= 100.0:
            raise problem("must be between 0 and 100", fix="give the candidate's share, e.g. 5")
        if abs(weight * 100 - round(weight * 100)) > 1e-6:
            raise problem("must have at most two decimals", fix="round it, e.g. 0.25")
        return weight

    @model_validator(mode="after")
    def _max_after_min(self) -> Self:
        if self.max_duration_s is not None and self.max_duration_s < self.min_duration_s:
            raise problem(
                f"must be at least min_duration_s ({self.min_duration_s:g})",
                fix="raise max_duration_s or lower min_duration_s",
                at=("max_duration_s",),
            )
        return self


class _Pause(_Schema):
    duration_s: NonNegative = 0.0


class PauseStep(_Schema):
    """``{pause: {}}`` or a bare ``pause:`` waits for a person; ``{pause: {duration_s: 600}}`` that long."""

    pause: _Pause = _Pause()


def _step_kind(value: Any) -> str:
    is_pause = isinstance(value, PauseStep) or (isinstance(value, Mapping) and "pause" in value)
    return "pause" if is_pause else "weight"


Step = Annotated[
    Annotated[WeightStep, Tag("weight")] | Annotated[PauseStep, Tag("pause")], Discriminator(_step_kind)
]


class DirectFile(_Schema):
    type: Literal["direct"]

    def to_value(self) -> Strategy:
        return DirectStrategy()


class CanaryFile(_Schema):
    type: Literal["canary"]
    steps: list[Step]

    @validates("steps")
    @classmethod
    def _some(cls, steps: list[WeightStep | PauseStep]) -> list[WeightStep | PauseStep]:
        if not steps:
            raise problem("must list at least one step", fix=_STEP_EXAMPLE)
        return steps

    @model_validator(mode="after")
    def _growing(self) -> Self:
        previous: float | None = None
        for index, step in enumerate(self.steps):
            if isinstance(step, PauseStep):
                if previous is None:
                    raise problem(
                        "cannot be the first step: a pause holds the previous step's weight",
                        fix="put a weighted step before it, e.g. [{weight_percent: 5}, {pause: {}}]",
                        at=("steps", index, "pause"),
                    )
                continue
            if previous is not None and round(step.weight_percent * 100) <= round(previous * 100):
                raise problem(
                    f"must be larger than the previous step's {previous}",
                    fix="list steps in increasing weight: a canary never shrinks",
                    at=("steps", index, "weight_percent"),
                )
            previous = step.weight_percent
        return self

    def to_value(self) -> Strategy:
        steps: list[CanaryStep] = []
        for step in self.steps:
            if isinstance(step, PauseStep):
                weight = steps[-1].weight_percent
                steps.append(CanaryStep(weight, step.pause.duration_s, 0, None, is_pause=True))
            else:
                steps.append(
                    CanaryStep(
                        step.weight_percent, step.min_duration_s, step.min_requests, step.max_duration_s
                    )
                )
        return CanaryStrategy(tuple(steps))


class WarmupFile(_Schema):
    shadow_fraction: Fraction = WarmupChecks.shadow_fraction
    min_requests: Count = WarmupChecks.min_requests
    min_duration_s: NonNegative = WarmupChecks.min_duration_s
    max_error_rate: Fraction | None = None
    max_p99_latency_ms: NonNegative | None = None

    @model_validator(mode="after")
    def _sees_traffic(self) -> Self:
        if self.shadow_fraction == 0.0 and self.min_requests > 0:
            raise problem(
                "is 0, so the candidate would never see the warmup requests it needs",
                fix="mirror some traffic (e.g. 1.0) or set warmup.min_requests to 0",
                at=("shadow_fraction",),
            )
        return self


class BlueGreenFile(_Schema):
    type: Literal["blue_green"]
    warmup: WarmupFile = WarmupFile()
    bake_s: NonNegative = BlueGreenStrategy.bake_s
    bake_min_requests: Count = BlueGreenStrategy.bake_min_requests
    keep_previous_warm_s: NonNegative = BlueGreenStrategy.keep_previous_warm_s

    def to_value(self) -> Strategy:
        warmup = WarmupChecks(**self.warmup.model_dump())
        return BlueGreenStrategy(warmup, self.bake_s, self.bake_min_requests, self.keep_previous_warm_s)


class RollingFile(_Schema):
    type: Literal["rolling"]
    replicas: Positive
    batch_size: Positive = RollingStrategy.batch_size
    min_duration_s: NonNegative = RollingStrategy.min_duration_s
    min_requests: Count = RollingStrategy.min_requests

    @model_validator(mode="after")
    def _batch_fits(self) -> Self:
        if self.batch_size > self.replicas:
            raise problem(
                f"must be at most replicas ({self.replicas})",
                fix=f"replace at most {self.replicas} workers at a time",
                at=("batch_size",),
            )
        return self

    def to_value(self) -> Strategy:
        return RollingStrategy(self.replicas, self.batch_size, self.min_duration_s, self.min_requests)


class ShadowFile(_Schema):
    type: Literal["shadow"]
    fraction: Fraction = ShadowStrategy.fraction
    min_duration_s: NonNegative = ShadowStrategy.min_duration_s
    min_requests: Count = ShadowStrategy.min_requests
    promote_on_pass: bool = ShadowStrategy.promote_on_pass

    @validates("fraction")
    @classmethod
    def _mirrors(cls, fraction: float) -> float:
        if fraction == 0.0:
            raise problem("must be above 0", fix="mirror e.g. 0.1 of requests")
        return fraction

    def to_value(self) -> Strategy:
        return ShadowStrategy(self.fraction, self.min_duration_s, self.min_requests, self.promote_on_pass)


class AbFile(_Schema):
    type: Literal["ab"]
    split_percent: float = AbStrategy.split_percent
    min_requests: Count = AbStrategy.min_requests
    min_duration_s: NonNegative = AbStrategy.min_duration_s
    max_duration_s: NonNegative = AbStrategy.max_duration_s

    @validates("split_percent")
    @classmethod
    def _split(cls, split: float) -> float:
        if not 0.0 < split < 100.0:
            raise problem("must be between 0 and 100 (exclusive)", fix="give the candidate's share, e.g. 50")
        return split

    @model_validator(mode="after")
    def _max_after_min(self) -> Self:
        if self.max_duration_s < self.min_duration_s:
            raise problem(
                f"must be at least min_duration_s ({self.min_duration_s:g})",
                fix="raise max_duration_s or lower min_duration_s",
                at=("max_duration_s",),
            )
        return self

    def to_value(self) -> Strategy:
        return AbStrategy(self.split_percent, self.min_requests, self.min_duration_s, self.max_duration_s)


StrategyFile = Annotated[
    DirectFile | CanaryFile | BlueGreenFile | RollingFile | ShadowFile | AbFile, Field(discriminator="type")
]


# -- routing and scaling ----------------------------------------------------------------------------
class RoutingKeyFile(_Schema):
    source: Literal["header", "field"] = "header"
    name: str | None = None

    @model_validator(mode="after")
    def _name_fits(self) -> Self:
        if self.source == "header" and not _HEADER.fullmatch(self.name or RoutingKey.name):
            raise problem("is not a valid header name", fix="e.g. x-routing-key", at=("name",))
        if self.source == "field" and self.name is None:
            raise problem("is required", fix="name the input field, e.g. user_id", at=("name",))
        if self.source == "field" and not str(self.name).strip():
            raise problem("must not be empty", fix="name the input field, e.g. user_id", at=("name",))
        return self

    def to_value(self) -> RoutingKey:
        if self.source == "field":
            return RoutingKey("field", str(self.name))
        return RoutingKey("header", (self.name or RoutingKey.name).lower())


class AutoscalingFile(_Schema):
    min_replicas: Count = 1
    max_replicas: Positive
    target_ongoing_requests: Amount | None = None

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.max_replicas < self.min_replicas:
            raise problem(
                f"must be at least min_replicas ({self.min_replicas})",
                fix=f"use a value >= {self.min_replicas}",
                at=("max_replicas",),
            )
        return self


class ScalingFile(_Schema):
    """``{replicas: 2}`` or ``{autoscaling: {min_replicas: 1, max_replicas: 4}}``, with ``num_cpus``."""

    replicas: Positive | None = None
    autoscaling: AutoscalingFile | None = None
    num_cpus: Amount | None = None

    @validates("autoscaling", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == {} else value

    @model_validator(mode="after")
    def _fixed_or_range(self) -> Self:
        if self.replicas is not None and self.autoscaling is not None:
            raise problem(
                "cannot be given with autoscaling",
                fix="give a fixed 'replicas' or an 'autoscaling' range, not both",
                at=("replicas",),
            )
        return self

    def to_value(self) -> VariantScaling:
        auto = self.autoscaling
        if auto is None:
            return VariantScaling(replicas=self.replicas, num_cpus=self.num_cpus)
        return VariantScaling(
            None, auto.min_replicas, auto.max_replicas, auto.target_ongoing_requests, self.num_cpus
        )


# -- upstream endpoints -----------------------------------------------------------------------------
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
Seconds = Annotated[float, at_least(0.001)]


class UpstreamEndpointFile(_Schema):
    """``{url: http://127.0.0.1:8001/v1, model: support-lm, api_key_env: LLM_KEY}`` (the rest optional)."""

    url: str
    model: str
    api_key_env: str | None = None
    timeout_s: Seconds = UpstreamEndpoint.timeout_s
    connect_timeout_s: Seconds = UpstreamEndpoint.connect_timeout_s
    retries: Annotated[int, at_least(0)] = UpstreamEndpoint.retries
    retry_budget: Fraction = UpstreamEndpoint.retry_budget

    @validates("url")
    @classmethod
    def _http(cls, url: str) -> str:
        # the full check (allow-list, addresses) runs when the variant is loaded: lockgate.llm.hosts
        if not url.lower().startswith(("http://", "https://")) or any(c.isspace() for c in url):
            raise problem("must be an http:// or https:// URL", fix="e.g. http://127.0.0.1:8001/v1")
        return url

    @validates("model")
    @classmethod
    def _named(cls, model: str) -> str:
        if not model.strip():
            raise problem("must name the model the endpoint serves", fix="e.g. support-lm")
        return model

    @validates("api_key_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.fullmatch(name):
            raise problem(
                "must be the name of an environment variable (the key itself never goes in a spec)",
                fix="e.g. LLM_API_KEY",
            )
        return name

    def to_value(self) -> UpstreamEndpoint:
        return UpstreamEndpoint(
            self.url,
            self.model,
            self.api_key_env,
            self.timeout_s,
            self.connect_timeout_s,
            self.retries,
            self.retry_budget,
        )


class UpstreamsFile(_Schema):
    """``{allowed_hosts: [127.0.0.1:8001], endpoints: {NAME: {...}}}``."""

    allowed_hosts: list[str] = Field(default_factory=list)
    endpoints: dict[Name, UpstreamEndpointFile] = Field(default_factory=dict)

    def to_value(self) -> Upstreams:
        return Upstreams(
            tuple(self.allowed_hosts),
            {name: endpoint.to_value() for name, endpoint in self.endpoints.items()},
        )


# -- generative variants ---------------------------------------------------------------------------
_PROMPT_REF = re.compile(r"^(prompts:/)?[A-Za-z0-9][A-Za-z0-9_.-]*(@[A-Za-z0-9_.-]+|/[0-9]+)$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LlmVariantFile(_Schema):
    """``{prompt: support@2, variables: {product: lockgate}, price_per_1k_tokens: 0.002}``."""

    prompt: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    price_per_1k_tokens: NonNegative | None = None

    @validates("prompt")
    @classmethod
    def _prompt_ref(cls, value: str | None) -> str | None:
        if value is not None and not _PROMPT_REF.match(value):
            raise problem(
                f"{value!r} is not a prompt reference",
                fix="write NAME@VERSION or NAME@ALIAS, e.g. support@2 or support@champion",
            )
        return value

    @validates("variables")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _VARIABLE.match(name):
                raise problem(
                    f"{name!r} is not a template variable name", fix="use letters, digits and _, e.g. product"
                )
        return value

    def to_value(self) -> LlmVariant:
        return LlmVariant(self.prompt, dict(self.variables), self.price_per_1k_tokens)


# -- the spec ---------------------------------------------------------------------------------------
class SpecFile(_Schema):
    """A deployment spec as written: ``lockgate.config.load(SpecFile, data).to_value()``."""

    name: Name
    variants: dict[Name, ModelUri]
    baseline: str
    candidate: str
    strategy: StrategyFile
    routing_key: RoutingKeyFile = RoutingKeyFile()
    salt: str = ""
    analysis: AnalysisFile = SequentialAnalysis()
    scaling: dict[str, ScalingFile] = Field(default_factory=dict)
    upstreams: UpstreamsFile = UpstreamsFile()
    llm: dict[str, LlmVariantFile] = Field(default_factory=dict)

    @validates("analysis", mode="before")
    @classmethod
    def _sequential_by_default(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and value.get("policy") is None:
            return {**value, "policy": "sequential"}
        return value

    @validates("variants")
    @classmethod
    def _two_or_more(cls, value: dict[str, str]) -> dict[str, str]:
        # a field check, so it is reported with the other keys' problems, not after they are fixed
        if len(value) < 2:
            raise problem(
                "must name at least two variants",
                fix="add the baseline and the candidate, e.g. {stable: models:/m/1, canary: models:/m/2}",
            )
        return value

    @model_validator(mode="after")
    def _variants_fit(self) -> Self:
        names = sorted(self.variants)
        for key, value in (("baseline", self.baseline), ("candidate", self.candidate)):
            if value not in self.variants:
                raise problem(f"'{value}' is not a variant", fix=f"use one of {', '.join(names)}", at=(key,))
        if self.baseline == self.candidate:
            raise problem("must differ from baseline", fix="name the new variant here", at=("candidate",))
        for variant in self.scaling:
            if variant not in self.variants:
                fix = f"use one of {', '.join(names)}{did_you_mean(variant, names)}"
                raise problem(f"'{variant}' is not a variant", fix=fix, at=("scaling", variant))
        for variant in self.llm:
            if variant not in self.variants:
                fix = f"use one of {', '.join(names)}{did_you_mean(variant, names)}"
                raise problem(f"'{variant}' is not a variant", fix=fix, at=("llm", variant))
        endpoints = sorted(self.upstreams.endpoints)
        for variant, uri in self.variants.items():
            if (
                uri.startswith(UPSTREAM_PREFIX)
                and uri[len(UPSTREAM_PREFIX) :] not in self.upstreams.endpoints
            ):
                wanted = uri[len(UPSTREAM_PREFIX) :]
                fix = (
                    f"use one of {', '.join(endpoints)}{did_you_mean(wanted, endpoints)}"
                    if endpoints
                    else "describe it under upstreams.endpoints, e.g. {url: http://10.0.0.5/v1, model: m}"
                )
                raise problem(f"'{wanted}' is not an upstream endpoint", fix=fix, at=("variants", variant))
        return self

    def to_value(self) -> DeploymentSpec:
        return DeploymentSpec(
            self.name,
            dict(self.variants),
            self.baseline,
            self.candidate,
            self.strategy.to_value(),
            self.routing_key.to_value(),
            self.salt,
            self.analysis.to_value(),
            {variant: scaling.to_value() for variant, scaling in self.scaling.items()},
            self.upstreams.to_value(),
            {variant: llm.to_value() for variant, llm in self.llm.items()},
        )
