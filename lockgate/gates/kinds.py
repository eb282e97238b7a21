"""Check kinds: what each section under ``checks:`` in ``lockgate.yaml`` means, and the registry of them.

A kind names its settings model, the inputs it needs (so the shell only loads and measures what the
policy asks for) and a ``run`` that turns settings plus :class:`GateInputs` into results by calling the
pure checks. New kinds plug in with :func:`register_check_kind` without touching the gate; the text
and embedding kinds here are two (they call the model on a bundled evaluation set through the
``TextModel`` callable the shell passes in).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from lockgate.errors import CheckFailed, Conflict, ValidationError
from lockgate.gates import checks
from lockgate.gates.comparison import mcnemar_exact, paired_bootstrap
from lockgate.gates.drift import prediction_drift
from lockgate.gates.metrics import Metric, get_metric
from lockgate.gates.prompt import Embedder, PromptExample, Responder, score_prompt
from lockgate.gates.result import CheckResult, check_failed, check_skipped
from lockgate.gates.specs import (
    BudgetsSpec,
    ChampionSpec,
    DataSpec,
    DriftSpec,
    EmbeddingRetrievalSpec,
    MetricSpec,
    PromptSpec,
    ProvenanceSpec,
    SignatureSpec,
    SliceSpec,
    Spec,
    TextClassificationSpec,
)
from lockgate.gates.text import label_accuracy, load_text_evalset, recall_at_k, retrieval_pairs

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CHECK_KINDS",
    "Check",
    "CheckKind",
    "GateInputs",
    "Need",
    "PredictionFailed",
    "Predictions",
    "TextModel",
    "register_check_kind",
    "run_check",
    "slice_masks",
]

FloatArray = npt.NDArray[np.float64]
Need = Literal[
    "holdout", "baseline", "signature", "latency", "size", "profiles", "run_tags", "model", "prompt"
]
# A loaded model called on raw texts: labels for a classifier, one embedding row per text for an encoder.
TextModel = Callable[[Sequence[str]], npt.NDArray[Any]]


class PredictionFailed(CheckFailed):
    """The model raised on the evaluation data; the gate reports it as a failed check, not as bad input."""


@dataclass(frozen=True)
class Predictions:
    """One model's output on the holdout: labels (or regression values) and, if it has them, scores."""

    labels: FloatArray
    scores: FloatArray | None = None

    def for_metric(self, metric: Metric) -> FloatArray | None:
        return self.scores if metric.reads == "score" else self.labels


@dataclass(frozen=True)
class GateInputs:
    """Everything the checks read, as plain values; the shell fills what the policy needs."""

    task: str = "classification"
    seed: int = 0
    y_true: FloatArray | None = None
    frame: pd.DataFrame | None = None
    candidate: Predictions | None = None
    candidate_error: str | None = None
    baseline: Predictions | None = None
    baseline_ref: str | None = None
    candidate_schema: Sequence[Mapping[str, Any]] | None = None
    baseline_schema: Sequence[Mapping[str, Any]] | None = None
    latency_ms: Sequence[Sequence[float]] | None = None
    size_bytes: int | None = None
    holdout_profile: Mapping[str, Any] | None = None
    reference_profile: Mapping[str, Any] | None = None
    reference_ref: str | None = None
    target: str | None = None
    run_tags: Mapping[str, str] = field(default_factory=dict)
    candidate_model: TextModel | None = None
    baseline_model: TextModel | None = None
    prompt_template: str | None = None
    baseline_prompt_template: str | None = None
    prompt_examples: Sequence[PromptExample] = ()
    respond: Responder | None = None
    embed: Embedder | None = None


@runtime_checkable
class Check(Protocol):
    """A kind of check: the settings it reads, the inputs it needs and how it runs."""

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> type[Spec]: ...

    @property
    def needs(self) -> frozenset[Need]: ...

    @property
    def is_list(self) -> bool: ...

    def run(self, settings: Any, inputs: GateInputs) -> Sequence[CheckResult]: ...


@dataclass(frozen=True)
class CheckKind:
    """A :class:`Check` made of a function; ``is_list`` kinds take a list of settings (``metrics:``)."""

    name: str
    spec: type[Spec]
    needs: frozenset[Need]
    runner: Callable[[Any, GateInputs], Sequence[CheckResult]]
    is_list: bool = False
    description: str = ""

    def run(self, settings: Any, inputs: GateInputs) -> Sequence[CheckResult]:
        return self.runner(settings, inputs)


CHECK_KINDS: dict[str, Check] = {}


def register_check_kind(kind: Check, *, replace: bool = False) -> Check:
    """Make ``kind`` usable under ``checks:``; a name already taken is a Conflict unless ``replace``."""
    if kind.name in CHECK_KINDS and not replace:
        raise Conflict(f"check kind '{kind.name}' is already registered", hint="pick another name")
    CHECK_KINDS[kind.name] = kind
    return kind


def run_check(kind: Check, settings: Any, inputs: GateInputs) -> list[CheckResult]:
    """Run one kind and stamp its name on each result."""
    return [dataclasses.replace(r, kind=kind.name) for r in kind.run(settings, inputs)]


# -- shared guards --------------------------------------------------------------------------------
def _no_predictions(name: str, inputs: GateInputs) -> CheckResult:
    why = inputs.candidate_error or "no holdout was given"
    return check_failed(name, f"the candidate could not be scored on the holdout: {why}")


def _no_baseline(name: str, inputs: GateInputs) -> CheckResult:
    return check_skipped(name, f"no baseline model to compare with ({inputs.baseline_ref or 'none given'})")


def _values(preds: Predictions | None, metric: Metric) -> FloatArray | None:
    return None if preds is None else preds.for_metric(metric)


# -- the built-in kinds ---------------------------------------------------------------------------
def _run_metrics(specs: Sequence[MetricSpec], inputs: GateInputs) -> list[CheckResult]:
    out = []
    for spec in specs:
        metric = get_metric(spec.metric)
        name = f"metric {metric.name}"
        candidate = _values(inputs.candidate, metric)
        if inputs.y_true is None or inputs.candidate is None:
            out.append(_no_predictions(name, inputs))
            continue
        if candidate is None:
            out.append(check_failed(name, f"{metric.name} needs scores, and the model gives only labels"))
            continue
        baseline = _values(inputs.baseline, metric)
        out.append(
            checks.metric_threshold(
                metric.name,
                metric(inputs.y_true, candidate),
                None if baseline is None else metric(inputs.y_true, baseline),
                greater_is_better=(
                    metric.greater_is_better if spec.greater_is_better is None else spec.greater_is_better
                ),
                threshold=spec.threshold,
                min_absolute_change=spec.min_absolute_change,
                min_relative_change=spec.min_relative_change,
            )
        )
    return out


def _run_champion(specs: Sequence[ChampionSpec], inputs: GateInputs) -> list[CheckResult]:
    out = []
    for spec in specs:
        metric = get_metric(spec.metric)
        name = f"champion {metric.name} ({spec.test})"
        if inputs.y_true is None or inputs.candidate is None:
            out.append(_no_predictions(name, inputs))
            continue
        if inputs.baseline is None:
            out.append(_no_baseline(name, inputs))
            continue
        if spec.test == "mcnemar":
            result = mcnemar_exact(
                inputs.candidate.labels == inputs.y_true,
                inputs.baseline.labels == inputs.y_true,
                alpha=spec.alpha,
            )
            out.append(checks.champion_mcnemar(result, spec.margin))
            continue
        candidate, baseline = _values(inputs.candidate, metric), _values(inputs.baseline, metric)
        if candidate is None or baseline is None:
            out.append(check_failed(name, f"{metric.name} needs scores from both models"))
            continue
        boot = paired_bootstrap(
            metric,
            inputs.y_true,
            candidate,
            baseline,
            resamples=spec.resamples,
            alpha=spec.alpha,
            seed=inputs.seed,
        )
        out.append(checks.champion_bootstrap(boot, spec.margin))
    return out


def slice_masks(spec: SliceSpec, frame: pd.DataFrame, where: str) -> list[tuple[str, npt.NDArray[np.bool_]]]:
    """(label, row mask) for each slice a rule defines: one for a query, one per value of a column."""
    if spec.query is not None:
        try:
            picked = frame.query(spec.query)
        except (KeyError, NameError, SyntaxError, ValueError, TypeError) as exc:
            raise ValidationError(
                f"{where}.query '{spec.query}' cannot run on the holdout: {exc}",
                hint="write a pandas query over the holdout's columns; quote names with spaces in "
                f"backticks; columns are {', '.join(map(str, frame.columns))}",
            ) from exc
        return [(spec.label, np.asarray(frame.index.isin(picked.index)))]
    column = str(spec.column)
    if column not in frame.columns:
        raise ValidationError(
            f"{where}.column '{column}' is not a column of the holdout",
            hint=f"columns are {', '.join(map(str, frame.columns))}",
        )
    values = frame[column].dropna().unique()
    if len(values) > spec.max_values:
        raise ValidationError(
            f"{where}.column '{column}' has {len(values)} distinct values, "
            f"more than max_values={spec.max_values}",
            hint='slice a continuous column with a query rule instead, e.g. query: "`age` >= 65"',
        )
    prefix = spec.name or column
    return [(f"{prefix}={value}", np.asarray(frame[column] == value)) for value in sorted(values, key=str)]


def _run_slices(specs: Sequence[SliceSpec], inputs: GateInputs) -> list[CheckResult]:
    out = []
    for index, spec in enumerate(specs):
        metric = get_metric(spec.metric)
        if inputs.y_true is None or inputs.candidate is None or inputs.frame is None:
            out.append(_no_predictions(f"slice {spec.label} {metric.name}", inputs))
            continue
        candidate, baseline = _values(inputs.candidate, metric), _values(inputs.baseline, metric)
        if candidate is None:
            out.append(check_failed(f"slice {spec.label}", f"{metric.name} needs scores"))
            continue
        for label, mask in slice_masks(spec, inputs.frame, f"checks.slices[{index}]"):
            truth = inputs.y_true[mask]
            out.append(
                checks.slice_against_baseline(
                    label,
                    metric.name,
                    int(mask.sum()),
                    metric(truth, candidate[mask]),
                    None if baseline is None else metric(truth, baseline[mask]),
                    greater_is_better=metric.greater_is_better,
                    margin=spec.margin,
                    min_rows=spec.min_rows,
                    threshold=spec.threshold,
                )
            )
    return out


def _run_signature(spec: SignatureSpec, inputs: GateInputs) -> list[CheckResult]:
    if inputs.baseline_schema is None and inputs.baseline_ref is None:
        return [check_skipped("signature", "no baseline model to compare with")]
    return [
        checks.signature_compatibility(
            inputs.candidate_schema, inputs.baseline_schema, require_signature=spec.require_signature
        )
    ]


def _run_budgets(spec: BudgetsSpec, inputs: GateInputs) -> list[CheckResult]:
    out = []
    if spec.latency_p95_ms is not None:
        if inputs.latency_ms is None:
            out.append(_no_predictions("latency p95", inputs))
        else:
            out.append(checks.latency_budget(inputs.latency_ms, spec.latency_p95_ms))
    if spec.size_bytes is not None:
        if inputs.size_bytes is None:
            out.append(check_failed("artifact size", "the artifact size is unknown"))
        else:
            out.append(checks.size_budget(inputs.size_bytes, spec.size_bytes))
    return out


def _run_data(spec: DataSpec, inputs: GateInputs) -> list[CheckResult]:
    if inputs.holdout_profile is None:
        return [check_failed("data", "the holdout could not be profiled")]
    if inputs.reference_profile is None:
        return [
            check_skipped(
                "data",
                "no reference (training) dataset profile: set `reference: NAME@VERSION` in the policy or "
                "train with lockgate.track(datasets=[...])",
            )
        ]
    hold, ref = inputs.holdout_profile, inputs.reference_profile
    out = []
    if spec.check_schema:
        out.append(checks.data_schema(hold, ref))
    out.append(checks.data_nulls(hold, ref, max_increase=spec.max_null_increase))
    if spec.range_tolerance is not None:
        out.append(checks.data_ranges(hold, ref, tolerance=spec.range_tolerance))
    if spec.max_mean_shift_std is not None or spec.max_std_ratio is not None:
        out.append(
            checks.data_skew(
                hold, ref, max_mean_shift_std=spec.max_mean_shift_std, max_std_ratio=spec.max_std_ratio
            )
        )
    return out


def _run_drift(spec: DriftSpec, inputs: GateInputs) -> list[CheckResult]:
    name = "prediction drift"
    if inputs.candidate is None:
        return [_no_predictions(name, inputs)]
    if inputs.baseline is None:
        return [_no_baseline(name, inputs)]
    cand, base = inputs.candidate, inputs.baseline
    if cand.scores is not None and base.scores is not None:
        on, current, reference = "score", cand.scores, base.scores
    else:
        on, current, reference = "label", cand.labels, base.labels
    drift = prediction_drift(reference, current, bins=spec.bins)
    return [checks.prediction_drift(drift, max_psi=spec.max_psi, max_ks=spec.max_ks, on=on)]


def _run_provenance(spec: ProvenanceSpec, inputs: GateInputs) -> list[CheckResult]:
    return [
        checks.provenance(
            inputs.run_tags,
            require_commit=spec.require_commit,
            require_clean=spec.require_clean,
            require_datasets=spec.require_datasets,
            require_verified=spec.require_verified,
        )
    ]


def _call(model: TextModel, texts: Sequence[str]) -> tuple[npt.NDArray[Any] | None, str | None]:
    try:
        return np.asarray(model(list(texts))), None
    except PredictionFailed as exc:
        return None, str(exc)


def _run_text_classification(spec: TextClassificationSpec, inputs: GateInputs) -> list[CheckResult]:
    from pathlib import Path

    evalset = load_text_evalset(
        spec.evalset,
        path=Path(spec.file) if spec.file else None,
        text_column=spec.text_column,
        label_column=spec.label_column,
    )
    name = f"text accuracy ({Path(evalset.name).name})"
    if inputs.candidate_model is None:
        return [check_failed(name, "the candidate model could not be loaded")]
    got, error = _call(inputs.candidate_model, evalset.texts)
    if got is None:
        return [check_failed(name, f"the candidate could not classify the texts: {error}")]
    try:
        candidate = label_accuracy(evalset.labels, got)
    except ValueError as exc:
        return [check_failed(name, f"the candidate's output does not fit: {exc}")]
    baseline = None
    if inputs.baseline_model is not None:
        base, _ = _call(inputs.baseline_model, evalset.texts)
        baseline = label_accuracy(evalset.labels, base) if base is not None else None
    return [
        checks.task_metric(
            name,
            "accuracy",
            candidate,
            baseline,
            threshold=spec.threshold,
            margin=spec.margin,
            n=len(evalset.texts),
        )
    ]


def _recall(model: TextModel, spec: EmbeddingRetrievalSpec, seed: int) -> tuple[float | None, str | None]:
    pairs = retrieval_pairs(spec.pairs, seed=seed)
    queries, error = _call(model, pairs.queries)
    documents, error = (None, error) if queries is None else _call(model, pairs.documents)
    if queries is None or documents is None:
        return None, error
    try:
        return recall_at_k(queries, documents, pairs.relevant, spec.k), None
    except ValueError as exc:
        return None, f"the output is not one embedding per text: {exc}"


def _run_embedding_retrieval(spec: EmbeddingRetrievalSpec, inputs: GateInputs) -> list[CheckResult]:
    name = f"embedding recall@{spec.k}"
    if inputs.candidate_model is None:
        return [check_failed(name, "the candidate model could not be loaded")]
    candidate, error = _recall(inputs.candidate_model, spec, inputs.seed)
    if candidate is None:
        return [check_failed(name, f"the candidate could not embed the texts: {error}")]
    baseline = None
    if inputs.baseline_model is not None:
        baseline, _ = _recall(inputs.baseline_model, spec, inputs.seed)
    return [
        checks.task_metric(
            name,
            f"recall@{spec.k}",
            candidate,
            baseline,
            threshold=spec.threshold,
            margin=spec.margin,
            n=spec.pairs,
        )
    ]


def _run_prompt(spec: PromptSpec, inputs: GateInputs) -> list[CheckResult]:
    name = f"prompt {spec.scoring} match"
    if inputs.prompt_template is None or inputs.respond is None:
        return [check_failed(name, "no prompt version to evaluate (validate prompts:/NAME/VERSION)")]
    if spec.scoring == "similarity" and inputs.embed is None:
        return [check_failed(name, "similarity scoring needs an embedder (pip install 'lockgate[text]')")]
    embed = inputs.embed if spec.scoring == "similarity" else None
    respond = inputs.respond

    def scored(template: str) -> tuple[float, float | None]:
        result = score_prompt(
            template, inputs.prompt_examples, respond, embed=embed, min_similarity=spec.min_similarity
        )
        return result.accuracy, result.mean_similarity

    candidate, similarity = scored(inputs.prompt_template)
    baseline = None
    if inputs.baseline_prompt_template is not None:
        baseline, _ = scored(inputs.baseline_prompt_template)
    result = checks.task_metric(
        name,
        "hit rate",
        candidate,
        baseline,
        threshold=spec.threshold,
        margin=spec.margin,
        n=len(inputs.prompt_examples),
    )
    if similarity is None:
        return [result]
    return [dataclasses.replace(result, numbers={**result.numbers, "mean_similarity": similarity})]


for _kind in (
    CheckKind("metrics", MetricSpec, frozenset({"holdout", "baseline"}), _run_metrics, is_list=True),
    CheckKind("champion", ChampionSpec, frozenset({"holdout", "baseline"}), _run_champion, is_list=True),
    CheckKind("slices", SliceSpec, frozenset({"holdout", "baseline"}), _run_slices, is_list=True),
    CheckKind("signature", SignatureSpec, frozenset({"signature"}), _run_signature),
    CheckKind("budgets", BudgetsSpec, frozenset({"latency", "size"}), _run_budgets),
    CheckKind("data", DataSpec, frozenset({"profiles"}), _run_data),
    CheckKind("drift", DriftSpec, frozenset({"holdout", "baseline"}), _run_drift),
    CheckKind("provenance", ProvenanceSpec, frozenset({"run_tags"}), _run_provenance),
    CheckKind("text_classification", TextClassificationSpec, frozenset({"model"}), _run_text_classification),
    CheckKind("embedding_retrieval", EmbeddingRetrievalSpec, frozenset({"model"}), _run_embedding_retrieval),
    CheckKind("prompt", PromptSpec, frozenset({"prompt"}), _run_prompt),
):
    register_check_kind(_kind)
