"""``generation:``: a generative model version or a prompt version answers an evaluation set; its
answers are scored per example (exact match, ROUGE-L, an LLM judge) and compared with the champion's
answers to the same examples by the gate's paired tests: the paired bootstrap of the mean score, or,
for exact match (0/1 per example) with ``test: mcnemar``, McNemar's exact test."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal, Self

import numpy as np
from pydantic import Field, field_validator, model_validator

from lockgate.gates.checks.champion import champion_bootstrap, champion_mcnemar
from lockgate.gates.comparison import mcnemar_exact, paired_bootstrap
from lockgate.gates.generation import GenerationMetric, GenerationOutputs, reference_scores
from lockgate.gates.kinds import CheckKind, GateInputs, Spec, register_check_kind
from lockgate.gates.metrics import FloatArray, Metric
from lockgate.gates.result import CheckResult, Number, check_failed, check_passed, check_skipped
from lockgate.gates.result import format_number as _fmt

__all__ = [
    "KIND",
    "EndpointSpec",
    "GenerationSpec",
    "JudgeSpec",
    "generation_comparison",
    "generation_summary",
    "metric_scores",
]


_DEFAULT_METRICS: tuple[GenerationMetric, ...] = ("exact_match", "rouge_l")


class EndpointSpec(Spec):
    """An OpenAI-compatible endpoint: its base URL (``http://127.0.0.1:8001/v1``), the model it serves,
    and the environment variable holding its API key, sent as a bearer token (none when not given)."""

    url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = Field(default=60.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"'{value}' is not an http(s) URL; write e.g. http://127.0.0.1:8001/v1")
        return value.rstrip("/")


class JudgeSpec(EndpointSpec):
    """An LLM judge: any OpenAI-compatible endpoint (``POST {url}/chat/completions``).

    ``prompt``: the judge prompt in lockgate's prompt registry (``NAME@VERSION`` or ``NAME@ALIAS``),
    using ``{{output}}`` (the answer judged) and any of ``{{input}}`` and ``{{reference}}``; it asks for a
    score from ``min_score`` to ``max_score``, which is scaled to [0, 1].
    """

    prompt: str
    min_score: float = 0.0
    max_score: float = 10.0
    max_tokens: int = Field(default=64, ge=1, le=4096)

    @model_validator(mode="after")
    def _scale(self) -> Self:
        if self.max_score <= self.min_score:
            raise ValueError(f"max_score ({self.max_score}) must be above min_score ({self.min_score})")
        return self


class GenerationSpec(Spec):
    """A candidate's answers on ``eval_set`` against the champion's.

    ``eval_set``: JSON lines (relative to the policy file), each ``{"input": ..., "reference": ...}``
    or ``{"variables": {...}, "reference": ...}``. ``model``: the model that answers when the
    candidate is a prompt version (a registered model ``NAME@VERSION`` / ``NAME@ALIAS`` /
    ``models:/...``, or a local folder), or ``endpoint``: a served model that answers it (an
    OpenAI-compatible endpoint). ``prompt``: the prompt version a model candidate's examples
    with ``variables`` are rendered with. Decoding is greedy with the policy's ``seed``.
    """

    eval_set: str
    metrics: list[GenerationMetric] = Field(default_factory=lambda: [*_DEFAULT_METRICS], min_length=1)
    model: str | None = None
    endpoint: EndpointSpec | None = None
    prompt: str | None = None
    judge: JudgeSpec | None = None
    max_tokens: int = Field(default=32, ge=1, le=4096)
    stop: list[str] = Field(default_factory=list, max_length=4)
    chat: bool = False
    thresholds: dict[GenerationMetric, float] = Field(default_factory=dict)
    margin: float = Field(default=0.0, ge=0, le=1)
    test: Literal["bootstrap", "mcnemar"] = "bootstrap"
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    resamples: int = Field(default=1000, ge=100, le=100_000)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.test == "mcnemar" and "exact_match" not in self.metrics:
            raise ValueError("test 'mcnemar' is for exact_match, which metrics does not list")
        if self.model is not None and self.endpoint is not None:
            raise ValueError("give one of model (loaded here) and endpoint (a served model), not both")
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError("metrics lists a metric twice")
        if "judge" in self.metrics and self.judge is None:
            raise ValueError("metric 'judge' needs a judge: {url, model, prompt} section")
        unused = sorted(set(self.thresholds) - set(self.metrics))
        if unused:
            raise ValueError(f"thresholds names {', '.join(unused)}, which metrics does not list")
        if any(not 0 <= t <= 1 for t in self.thresholds.values()):
            raise ValueError("each threshold is a mean score in [0, 1]")
        return self


def metric_scores(
    metric: GenerationMetric, outputs: GenerationOutputs
) -> tuple[tuple[float, ...], tuple[float, ...] | None]:
    """Per-example scores of the candidate and the baseline (None when there is none) for ``metric``."""
    if metric == "judge":
        if outputs.candidate_judge is None:
            raise ValueError("the judge's scores were not gathered")  # a bug in the shell, not input
        return outputs.candidate_judge, outputs.baseline_judge
    candidate = reference_scores(metric, outputs.candidate, outputs.examples)
    baseline = (
        reference_scores(metric, outputs.baseline, outputs.examples) if outputs.baseline is not None else None
    )
    return candidate, baseline


def generation_summary(
    metric: GenerationMetric,
    candidate: Sequence[float],
    baseline: Sequence[float] | None,
    threshold: float | None,
) -> CheckResult:
    """The candidate's mean score (and the baseline's), failed when below ``threshold``."""
    name = f"generation {metric}"
    mean = float(np.mean(candidate))
    numbers: dict[str, Number] = {"candidate": mean, "n": len(candidate)}
    if baseline is not None:
        numbers["baseline"] = float(np.mean(baseline))
    message = f"mean {metric} {_fmt(mean)} on {len(candidate)} examples"
    if baseline is not None:
        message += f" (champion {_fmt(float(np.mean(baseline)))})"
    if threshold is None:
        return check_passed(name, message, **numbers)
    numbers["threshold"] = threshold
    if mean < threshold:
        return check_failed(name, f"{message}: below the threshold {_fmt(threshold)}", **numbers)
    return check_passed(name, message, **numbers)


def _mean(_: FloatArray, values: FloatArray) -> float:
    return float(np.mean(values)) if values.size else float("nan")


def generation_comparison(
    metric: GenerationMetric,
    candidate: Sequence[float],
    baseline: Sequence[float],
    *,
    margin: float,
    alpha: float,
    resamples: int,
    seed: int,
    test: Literal["bootstrap", "mcnemar"] = "bootstrap",
) -> CheckResult:
    """Non-inferiority to the champion on the same examples, worse by at most ``margin``: the paired
    bootstrap of the mean score, or McNemar's exact test for exact match when ``test`` says so (it
    needs more examples: its interval is exact, so a few discordant pairs leave it wide)."""
    if metric == "exact_match" and test == "mcnemar":
        result = mcnemar_exact(np.asarray(candidate) == 1.0, np.asarray(baseline) == 1.0, alpha=alpha)
        return dataclasses.replace(champion_mcnemar(result, margin), name="champion exact_match (mcnemar)")
    boot = paired_bootstrap(
        Metric(metric, _mean, greater_is_better=True, reads="value", task="regression"),
        np.zeros(len(candidate)),
        candidate,
        baseline,
        resamples=resamples,
        alpha=alpha,
        seed=seed,
    )
    return champion_bootstrap(boot, margin)


def _run_generation(spec: GenerationSpec, inputs: GateInputs) -> list[CheckResult]:
    outputs = inputs.generation
    if outputs is None:
        return [
            check_failed(
                "generation",
                "no answers were gathered: run this check through `lockgate validate` "
                "(lockgate.llm.gate.validate_generation), which runs the generative models",
            )
        ]
    results = []
    for metric in spec.metrics:
        candidate, baseline = metric_scores(metric, outputs)
        results.append(generation_summary(metric, candidate, baseline, spec.thresholds.get(metric)))
        if baseline is None:
            why = inputs.baseline_ref or "none given"
            results.append(check_skipped(f"champion {metric}", f"no champion to compare with ({why})"))
            continue
        results.append(
            generation_comparison(
                metric,
                candidate,
                baseline,
                margin=spec.margin,
                alpha=spec.alpha,
                resamples=spec.resamples,
                seed=inputs.seed,
                test=spec.test,
            )
        )
    return results


KIND = register_check_kind(
    CheckKind(
        "generation",
        GenerationSpec,
        frozenset({"generation"}),
        _run_generation,
        description="a generative model or prompt version's answers against the champion's",
    )
)
