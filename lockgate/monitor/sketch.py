"""Mergeable summaries of live inputs and predictions, small enough to keep per variant.

A sketch never holds raw values: numbers go into fixed bins cut at the *reference* data's quantiles
(so drift is measured on the bins that matter for this model), categories into capped counts, and
embeddings into a running sum (the centroid) with counts. Sketches from several workers add up
exactly with ``merge``/``+``, like the accumulators in :mod:`lockgate.stats.accumulators`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import ValidationError

__all__ = ["CategoricalSketch", "EmbeddingSketch", "NumericSketch", "Sketch", "sketch_from_dict"]

OTHER = "__other__"


@dataclass
class NumericSketch:
    """Counts of values in bins cut at ``edges``: (-inf, e0], (e0, e1], ..., (e_last, inf); NaNs apart."""

    edges: tuple[float, ...]
    counts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    nulls: int = 0

    kind = "numeric"

    def __post_init__(self) -> None:
        if list(self.edges) != sorted(set(self.edges)):
            raise ValidationError(
                "sketch edges must be strictly increasing", hint="cut them with from_reference"
            )
        if self.counts.size == 0:
            self.counts = np.zeros(len(self.edges) + 1, dtype=np.int64)
        self._edges = np.asarray(self.edges, dtype=np.float64)

    @classmethod
    def from_reference(cls, values: npt.ArrayLike, bins: int = 20) -> NumericSketch:
        """Edges at the reference's quantiles (merged where they coincide), counts of the reference."""
        if bins < 2:
            raise ValidationError(f"bins={bins} must be 2 or more", hint="20 is a good default")
        arr = np.asarray(values, dtype=np.float64).ravel()
        finite = arr[np.isfinite(arr)]
        cut: list[float] = []
        if finite.size:
            cut = [float(e) for e in np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))]
        sketch = cls(tuple(cut))
        sketch.update(arr)
        return sketch

    def empty_like(self) -> NumericSketch:
        return NumericSketch(self.edges)

    def update(self, values: npt.ArrayLike) -> None:
        arr = np.asarray(values, dtype=np.float64).ravel()
        finite = np.isfinite(arr)
        self.nulls += int(arr.size - np.count_nonzero(finite))
        idx = np.searchsorted(self._edges, arr[finite], side="left")
        self.counts += np.bincount(idx, minlength=self.counts.size).astype(np.int64)

    def merge(self, other: Sketch) -> None:
        if not isinstance(other, NumericSketch) or other.edges != self.edges:
            raise ValidationError("cannot merge numeric sketches cut at different edges")
        self.counts += other.counts
        self.nulls += other.nulls

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def shares(self) -> npt.NDArray[np.float64]:
        total = self.counts.sum()
        return self.counts / total if total else np.zeros_like(self.counts, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "edges": list(self.edges),
            "counts": self.counts.tolist(),
            "nulls": self.nulls,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericSketch:
        return cls(tuple(data["edges"]), np.asarray(data["counts"], dtype=np.int64), int(data["nulls"]))


@dataclass
class CategoricalSketch:
    """Counts per category; categories not in ``categories`` (the reference's, capped) go to ``__other__``."""

    categories: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=dict)
    nulls: int = 0

    kind = "categorical"

    @classmethod
    def from_reference(cls, values: Sequence[Any], max_categories: int = 50) -> CategoricalSketch:
        present = [str(v) for v in values if v is not None and v == v]
        uniques, freq = np.unique(np.asarray(present, dtype=object).astype(str), return_counts=True)
        top = [
            str(u) for u, _ in sorted(zip(uniques, freq, strict=True), key=lambda t: -t[1])[:max_categories]
        ]
        sketch = cls(tuple(sorted(top)))
        sketch.update(values)
        return sketch

    def empty_like(self) -> CategoricalSketch:
        return CategoricalSketch(self.categories)

    def update(self, values: Sequence[Any] | npt.ArrayLike) -> None:
        known = set(self.categories)
        for value in np.asarray(values, dtype=object).ravel():
            if value is None or value != value:  # None or NaN
                self.nulls += 1
                continue
            key = str(value) if str(value) in known else OTHER
            self.counts[key] = self.counts.get(key, 0) + 1

    def merge(self, other: Sketch) -> None:
        if not isinstance(other, CategoricalSketch) or other.categories != self.categories:
            raise ValidationError("cannot merge categorical sketches with different categories")
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        self.nulls += other.nulls

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def vector(self) -> npt.NDArray[np.int64]:
        return np.asarray([self.counts.get(c, 0) for c in (*self.categories, OTHER)], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "categories": list(self.categories),
            "counts": dict(self.counts),
            "nulls": self.nulls,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalSketch:
        return cls(
            tuple(data["categories"]), {str(k): int(v) for k, v in data["counts"].items()}, int(data["nulls"])
        )


@dataclass
class EmbeddingSketch:
    """Running sum of unit-normalised embeddings (the centroid) and the count."""

    dim: int
    total: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    count: int = 0

    kind = "embedding"

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValidationError(f"embedding dim={self.dim} must be 1 or more")
        if self.total.size == 0:
            self.total = np.zeros(self.dim)

    @classmethod
    def from_reference(cls, vectors: npt.ArrayLike) -> EmbeddingSketch:
        arr = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        sketch = cls(arr.shape[1])
        sketch.update(arr)
        return sketch

    def empty_like(self) -> EmbeddingSketch:
        return EmbeddingSketch(self.dim)

    def update(self, vectors: npt.ArrayLike) -> None:
        arr = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        if arr.shape[1] != self.dim:
            raise ValidationError(f"embeddings of dim {arr.shape[1]} given to a sketch of dim {self.dim}")
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        self.total += (arr / np.where(norms == 0, 1.0, norms)).sum(axis=0)
        self.count += arr.shape[0]

    def merge(self, other: Sketch) -> None:
        if not isinstance(other, EmbeddingSketch) or other.dim != self.dim:
            raise ValidationError("cannot merge embedding sketches of different dimensions")
        self.total += other.total
        self.count += other.count

    def centroid(self) -> npt.NDArray[np.float64]:
        return self.total / self.count if self.count else np.zeros(self.dim)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "dim": self.dim, "total": self.total.tolist(), "count": self.count}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbeddingSketch:
        return cls(int(data["dim"]), np.asarray(data["total"], dtype=np.float64), int(data["count"]))


Sketch = NumericSketch | CategoricalSketch | EmbeddingSketch


def sketch_from_dict(data: Mapping[str, Any]) -> Sketch:
    kinds: dict[str, Any] = {
        "numeric": NumericSketch,
        "categorical": CategoricalSketch,
        "embedding": EmbeddingSketch,
    }
    try:
        return kinds[str(data["kind"])].from_dict(data)  # type: ignore[no-any-return]
    except KeyError as exc:
        raise ValidationError(
            f"unknown sketch kind {data.get('kind')!r}", hint="numeric, categorical or embedding"
        ) from exc
