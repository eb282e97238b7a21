"""Text and embedding models: the bundled evaluation sets and their task metrics, as plain values.

Two sets ship with lockgate, so a gate can score a text model without downloading anything:

* ``sentiment``: short product reviews labelled ``positive`` / ``negative`` (``evalsets/sentiment.csv``),
  for accuracy of a text classifier;
* generated query/document pairs (:func:`retrieval_pairs`): how-to questions and the one guide in a
  corpus that answers each, for recall@k of a sentence encoder such as the bundled MiniLM.

Everything here is pure except :func:`load_text_evalset`, which reads a table.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lockgate.errors import NotFound, ValidationError

__all__ = [
    "BUNDLED_TEXT_SETS",
    "RetrievalPairs",
    "TextEvalSet",
    "label_accuracy",
    "load_text_evalset",
    "recall_at_k",
    "retrieval_pairs",
]

BUNDLED_TEXT_SETS = ("sentiment",)


@dataclass(frozen=True)
class TextEvalSet:
    """Texts and their expected labels (as text), and where they came from."""

    name: str
    texts: tuple[str, ...]
    labels: tuple[str, ...]


def load_text_evalset(
    name: str = "sentiment",
    *,
    path: Path | None = None,
    text_column: str = "text",
    label_column: str = "label",
) -> TextEvalSet:
    """The bundled set ``name``, or a CSV file at ``path`` with a text and a label column."""
    if path is None:
        if name not in BUNDLED_TEXT_SETS:
            raise NotFound(
                f"there is no bundled text evaluation set '{name}'",
                hint=f"bundled sets: {', '.join(BUNDLED_TEXT_SETS)}; or give `file: PATH.csv`",
            )
        text = resources.files("lockgate.gates").joinpath(f"evalsets/{name}.csv").read_text("utf-8")
        source = name
    else:
        if not path.is_file():
            raise NotFound(f"text evaluation file '{path}' does not exist", hint="fix `file:` in the policy")
        text = path.read_text(encoding="utf-8")
        source = str(path)
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or text_column not in rows[0] or label_column not in rows[0]:
        columns = ", ".join(rows[0]) if rows else "none"
        raise ValidationError(
            f"text evaluation set '{source}' needs columns '{text_column}' and '{label_column}'",
            hint=f"its columns are {columns}; set text_column / label_column",
        )
    return TextEvalSet(
        source, tuple(r[text_column] for r in rows), tuple(str(r[label_column]).strip() for r in rows)
    )


def label_accuracy(expected: tuple[str, ...], predicted: npt.ArrayLike) -> float:
    """Share of texts whose predicted label equals the expected one, compared as text (``1`` == ``1.0``)."""
    got = np.asarray(predicted).ravel()
    if got.shape[0] != len(expected):
        raise ValueError(f"{got.shape[0]} predictions for {len(expected)} texts")
    return float(np.mean([_as_label(g) == e for g, e in zip(got, expected, strict=True)]))


def _as_label(value: object) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


# -- retrieval ------------------------------------------------------------------------------------
_ITEMS = (
    "bicycle tyre", "kitchen sink", "laptop battery", "garden fence", "car windscreen", "wooden floor",
    "leather jacket", "coffee machine", "roof gutter", "washing machine", "piano", "aquarium",
    "lawn mower", "smartphone screen", "oven", "swimming pool", "chimney", "guitar string",
    "tent", "ceiling fan",
)  # fmt: skip
_ACTIONS = (
    ("repair", "repairing", "fix a broken"),
    ("clean", "cleaning", "get dirt off a"),
    ("paint", "painting", "change the colour of a"),
    ("install", "installing", "set up a new"),
)


@dataclass(frozen=True)
class RetrievalPairs:
    """Queries, a corpus of documents, and for each query the index of the one document that answers it."""

    queries: tuple[str, ...]
    documents: tuple[str, ...]
    relevant: tuple[int, ...]


def retrieval_pairs(count: int = 60, *, seed: int = 0) -> RetrievalPairs:
    """``count`` generated how-to questions over a corpus of every (action, item) guide.

    The corpus holds all 80 guides, so each query has near misses (the same item, another action; the
    same action, another item): recall@1 takes a model that reads both words, recall@5 a fair one.
    """
    documents = tuple(
        f"A step-by-step guide to {gerund} a {item}: the tools you need, how long it takes "
        "and mistakes to avoid."
        for _, gerund, _ in _ACTIONS
        for item in _ITEMS
    )
    if not 1 <= count <= len(documents):
        raise ValueError(f"count must be between 1 and {len(documents)}")
    picked = np.random.default_rng(seed).permutation(len(documents))[:count]
    queries, relevant = [], []
    for index in sorted(int(i) for i in picked):
        (verb, _, paraphrase), item = _ACTIONS[index // len(_ITEMS)], _ITEMS[index % len(_ITEMS)]
        phrasing = (
            f"how do I {verb} my {item}?" if index % 2 else f"what is the best way to {paraphrase} {item}"
        )
        queries.append(phrasing)
        relevant.append(index)
    return RetrievalPairs(tuple(queries), documents, tuple(relevant))


def recall_at_k(
    query_embeddings: npt.ArrayLike, document_embeddings: npt.ArrayLike, relevant: tuple[int, ...], k: int
) -> float:
    """Share of queries whose relevant document is among the ``k`` most cosine-similar documents."""
    queries = _unit_rows(np.asarray(query_embeddings, dtype=np.float64))
    documents = _unit_rows(np.asarray(document_embeddings, dtype=np.float64))
    if queries.shape[0] != len(relevant) or queries.shape[1] != documents.shape[1]:
        raise ValueError(
            f"embeddings do not line up: {queries.shape} for {len(relevant)} queries, "
            f"{documents.shape} documents"
        )
    similarity = queries @ documents.T
    target = similarity[np.arange(len(relevant)), list(relevant)]
    # Rank = documents strictly more similar than the relevant one; ties count in the model's favour.
    ranks = np.sum(similarity > target[:, None], axis=1)
    return float(np.mean(ranks < k))


def _unit_rows(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if matrix.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d array, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)
