"""``text_classification:``: a text classifier's accuracy on a small evaluation set, against the
baseline's."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from lockgate.gates.checks.task import task_metric
from lockgate.gates.kinds import CheckKind, GateInputs, Spec, call_text_model, register_check_kind
from lockgate.gates.result import CheckResult, check_failed
from lockgate.gates.text import label_accuracy, load_text_evalset

__all__ = [
    "KIND",
    "TextClassificationSpec",
]


class TextClassificationSpec(Spec):
    """Accuracy of a text classifier on a small evaluation set: the bundled one or a CSV file.

    ``threshold``: the candidate's accuracy must be at least this. ``margin``: it may be below the
    baseline's by at most this much (checked when there is a baseline).
    """

    evalset: str = "sentiment"
    file: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    threshold: float | None = Field(default=None, ge=0, le=1)
    margin: float = Field(default=0.0, ge=0, le=1)


def _run_text_classification(spec: TextClassificationSpec, inputs: GateInputs) -> list[CheckResult]:
    evalset = load_text_evalset(
        spec.evalset,
        path=Path(spec.file) if spec.file else None,
        text_column=spec.text_column,
        label_column=spec.label_column,
    )
    name = f"text accuracy ({Path(evalset.name).name})"
    if inputs.candidate_model is None:
        return [check_failed(name, "the candidate model could not be loaded")]
    got, error = call_text_model(inputs.candidate_model, evalset.texts)
    if got is None:
        return [check_failed(name, f"the candidate could not classify the texts: {error}")]
    try:
        candidate = label_accuracy(evalset.labels, got)
    except ValueError as exc:
        return [check_failed(name, f"the candidate's output does not fit: {exc}")]
    baseline = None
    if inputs.baseline_model is not None:
        base, _ = call_text_model(inputs.baseline_model, evalset.texts)
        baseline = label_accuracy(evalset.labels, base) if base is not None else None
    return [
        task_metric(
            name,
            "accuracy",
            candidate,
            baseline,
            threshold=spec.threshold,
            margin=spec.margin,
            n=len(evalset.texts),
        )
    ]


KIND = register_check_kind(
    CheckKind("text_classification", TextClassificationSpec, frozenset({"model"}), _run_text_classification)
)
