"""``embedding_retrieval:``: a sentence encoder's recall@k on generated query/document pairs, against
the baseline's."""

from __future__ import annotations

from pydantic import Field

from lockgate.gates.checks.task import task_metric
from lockgate.gates.kinds import CheckKind, GateInputs, Spec, TextModel, call_text_model, register_check_kind
from lockgate.gates.result import CheckResult, check_failed
from lockgate.gates.text import recall_at_k, retrieval_pairs

__all__ = [
    "KIND",
    "EmbeddingRetrievalSpec",
]


class EmbeddingRetrievalSpec(Spec):
    """recall@k of a sentence encoder on generated query/document pairs (seeded by the policy's seed).

    The model is called on a list of texts and must return one embedding row per text.
    """

    k: int = Field(default=5, ge=1, le=80)
    pairs: int = Field(default=60, ge=10, le=80)
    threshold: float | None = Field(default=None, ge=0, le=1)
    margin: float = Field(default=0.0, ge=0, le=1)


def _recall(model: TextModel, spec: EmbeddingRetrievalSpec, seed: int) -> tuple[float | None, str | None]:
    pairs = retrieval_pairs(spec.pairs, seed=seed)
    queries, error = call_text_model(model, pairs.queries)
    documents, error = (None, error) if queries is None else call_text_model(model, pairs.documents)
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
        task_metric(
            name,
            f"recall@{spec.k}",
            candidate,
            baseline,
            threshold=spec.threshold,
            margin=spec.margin,
            n=spec.pairs,
        )
    ]


KIND = register_check_kind(
    CheckKind("embedding_retrieval", EmbeddingRetrievalSpec, frozenset({"model"}), _run_embedding_retrieval)
)
