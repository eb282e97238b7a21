"""Check kinds: the registry of what each section under ``checks:`` in ``lockgate.yaml`` means.

A kind names its settings model (a :class:`Spec`), the inputs it needs (so the shell only loads and
measures what the policy asks for) and a ``run`` that turns settings plus :class:`GateInputs` into
results. Each built-in kind is one module of :mod:`lockgate.gates.checks` holding its spec, its pure
decision and its runner, registered with :func:`register_check_kind`; a plug-in's kind is the same,
in a module of its own, without touching the gate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from lockgate.config import Schema
from lockgate.errors import CheckFailed, Conflict
from lockgate.gates.generation import GenerationOutputs
from lockgate.gates.metrics import Metric
from lockgate.gates.prompt import Embedder, PromptExample, Responder
from lockgate.gates.result import CheckResult, check_failed, check_skipped

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
    "Spec",
    "TextModel",
    "call_text_model",
    "no_baseline",
    "no_predictions",
    "predictions_for",
    "register_check_kind",
    "run_check",
    "slice_masks",
]

FloatArray = npt.NDArray[np.float64]
Need = Literal[
    "holdout",
    "baseline",
    "signature",
    "latency",
    "size",
    "profiles",
    "run_tags",
    "model",
    "prompt",
    "generation",
]
# A loaded model called on raw texts: labels for a classifier, one embedding row per text for an encoder.
TextModel = Callable[[Sequence[str]], npt.NDArray[Any]]


class Spec(Schema):
    """Base of every check kind's settings: strict types, no unknown keys, immutable, finite numbers.

    A number must be written as a number and an unknown key is an error, so a typo (``min_delta`` for
    ``min_absolute_change``) stops the gate instead of silently loosening it.
    """


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
    generation: GenerationOutputs | None = None


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


# -- guards the kinds share ------------------------------------------------------------------------
def no_predictions(name: str, inputs: GateInputs) -> CheckResult:
    """A failed result: the candidate has no predictions on the holdout, and why."""
    why = inputs.candidate_error or "no holdout was given"
    return check_failed(name, f"the candidate could not be scored on the holdout: {why}")


def no_baseline(name: str, inputs: GateInputs) -> CheckResult:
    """A skipped result: there is no baseline to compare with."""
    return check_skipped(name, f"no baseline model to compare with ({inputs.baseline_ref or 'none given'})")


def predictions_for(preds: Predictions | None, metric: Metric) -> FloatArray | None:
    """What ``metric`` reads from ``preds`` (labels or scores); None when there is none."""
    return None if preds is None else preds.for_metric(metric)


def call_text_model(model: TextModel, texts: Sequence[str]) -> tuple[npt.NDArray[Any] | None, str | None]:
    """The model's output on ``texts``, or None and the reason when it raised :class:`PredictionFailed`."""
    try:
        return np.asarray(model(list(texts))), None
    except PredictionFailed as exc:
        return None, str(exc)


# The built-in kinds register themselves when their modules are imported; this import comes last so
# they find the registry above complete.
from lockgate.gates import checks as _builtin  # noqa: E402, F401
from lockgate.gates.checks.slices import slice_masks  # noqa: E402
