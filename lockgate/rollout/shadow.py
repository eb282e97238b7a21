"""How a shadow's answers compare with the primary's: a mergeable, vectorised accumulator.

The serving shell feeds batches of paired answers (primary, shadow) for the same requests; each
worker keeps its own :class:`ShadowComparison` and the controller adds them up with ``+``.

- labels: agreement rate, and the count of each (primary → shadow) flip;
- numbers (scores, regressions): mean and max absolute difference;
- embeddings: cosine similarity (mean and min);
- generated answers (text): exact-match rate, the shadow's length over the primary's, and the
  cosine of the two answers' sentence embeddings (the serving shell embeds them with MiniLM);
- latency of both side by side, in the same buckets as the variants' own histograms.

:func:`compare_outputs` folds one pair of answers in by their form; the shadow mirror of a served
deployment and ``lockgate replay`` both call it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import ValidationError
from lockgate.stats.accumulators import LatencyHistogram, Moments

__all__ = ["ShadowComparison", "compare_outputs"]


@dataclass
class ShadowComparison:
    """Agreement between primary and shadow answers, accumulated over batches."""

    labels_compared: int = 0
    labels_agreed: int = 0
    flips: dict[str, int] = field(default_factory=dict)
    abs_difference: Moments = field(default_factory=Moments)
    max_abs_difference: float = 0.0
    cosine: Moments = field(default_factory=Moments)
    min_cosine: float = 1.0
    primary_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    shadow_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    answers_compared: int = 0
    answers_equal: int = 0
    length_ratio: Moments = field(default_factory=Moments)
    answer_cosine: Moments = field(default_factory=Moments)
    min_answer_cosine: float = 1.0

    def update_answers(
        self, primary: Sequence[str], shadow: Sequence[str], cosines: Sequence[float] | None = None
    ) -> None:
        """Paired generated answers: equal after trimming whitespace, the shadow's length in
        characters over the primary's (an empty primary counts 1 character), and, when given,
        the cosine of each pair's sentence embeddings."""
        if len(primary) != len(shadow) or (cosines is not None and len(cosines) != len(primary)):
            raise ValidationError(
                f"{len(primary)} primary answers but {len(shadow)} shadow answers",
                hint="pass the two answers to the same requests, in the same order",
            )
        self.answers_compared += len(primary)
        self.answers_equal += sum(a.strip() == b.strip() for a, b in zip(primary, shadow, strict=True))
        self.length_ratio.update([len(b) / max(len(a), 1) for a, b in zip(primary, shadow, strict=True)])
        if cosines:
            self.answer_cosine.update(list(cosines))
            self.min_answer_cosine = min(self.min_answer_cosine, min(cosines))

    @property
    def exact_match_rate(self) -> float:
        """Share of answers the shadow gave word for word (1.0 before any)."""
        return self.answers_equal / self.answers_compared if self.answers_compared else 1.0

    def update_labels(self, primary: npt.ArrayLike, shadow: npt.ArrayLike) -> None:
        """Paired class labels; a flip is counted under ``"primary->shadow"``."""
        left, right = _paired(primary, shadow)
        same = left == right
        self.labels_compared += int(left.size)
        self.labels_agreed += int(np.count_nonzero(same))
        if not same.all():
            pairs = np.char.add(np.char.add(left[~same].astype(str), "->"), right[~same].astype(str))
            names, counts = np.unique(pairs, return_counts=True)
            for name, count in zip(names.tolist(), counts.tolist(), strict=True):
                self.flips[name] = self.flips.get(name, 0) + count

    def update_numbers(self, primary: npt.ArrayLike, shadow: npt.ArrayLike) -> None:
        """Paired numeric outputs (any shape; compared element by element)."""
        left, right = _paired(primary, shadow, dtype=np.float64)
        diff = np.abs(left - right).ravel()
        if diff.size:
            self.abs_difference.update(diff)
            self.max_abs_difference = max(self.max_abs_difference, float(diff.max()))

    def update_embeddings(self, primary: npt.ArrayLike, shadow: npt.ArrayLike) -> None:
        """Paired embeddings, one row per request; zero vectors count as similarity 0."""
        left, right = _paired(primary, shadow, dtype=np.float64)
        if left.ndim != 2:
            raise ValidationError(
                f"embeddings have shape {left.shape}, not (requests, dimensions)",
                hint="pass one embedding per row",
            )
        if left.shape[0] == 0:
            return
        norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
        dots = np.einsum("ij,ij->i", left, right)
        similarity = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
        self.cosine.update(similarity)
        self.min_cosine = min(self.min_cosine, float(similarity.min()))

    def record_latency(self, primary_ms: npt.ArrayLike, shadow_ms: npt.ArrayLike) -> None:
        left, right = _paired(primary_ms, shadow_ms, dtype=np.float64)
        self.primary_latency.update(left)
        self.shadow_latency.update(right)

    @property
    def agreement(self) -> float:
        """Share of labels the shadow got the same as the primary (1.0 before any)."""
        return self.labels_agreed / self.labels_compared if self.labels_compared else 1.0

    @property
    def flip_rate(self) -> float:
        return 1.0 - self.agreement

    def merge(self, other: ShadowComparison) -> None:
        self.labels_compared += other.labels_compared
        self.labels_agreed += other.labels_agreed
        for name, count in other.flips.items():
            self.flips[name] = self.flips.get(name, 0) + count
        self.abs_difference.merge(other.abs_difference)
        self.max_abs_difference = max(self.max_abs_difference, other.max_abs_difference)
        self.cosine.merge(other.cosine)
        self.min_cosine = min(self.min_cosine, other.min_cosine)
        self.primary_latency.merge(other.primary_latency)
        self.shadow_latency.merge(other.shadow_latency)
        self.answers_compared += other.answers_compared
        self.answers_equal += other.answers_equal
        self.length_ratio.merge(other.length_ratio)
        self.answer_cosine.merge(other.answer_cosine)
        self.min_answer_cosine = min(self.min_answer_cosine, other.min_answer_cosine)

    def __add__(self, other: ShadowComparison) -> ShadowComparison:
        out = ShadowComparison.from_dict(self.to_dict())
        out.merge(other)
        return out

    def summary(self) -> dict[str, float]:
        """The numbers for an audit event or a dashboard."""
        return {
            "labels_compared": float(self.labels_compared),
            "agreement": self.agreement,
            "flip_rate": self.flip_rate,
            "mean_abs_difference": self.abs_difference.mean,
            "max_abs_difference": self.max_abs_difference,
            "mean_cosine": self.cosine.mean if self.cosine.count else 1.0,
            "min_cosine": self.min_cosine,
            "primary_p99_ms": self.primary_latency.quantile(0.99),
            "shadow_p99_ms": self.shadow_latency.quantile(0.99),
            "answers_compared": float(self.answers_compared),
            "exact_match_rate": self.exact_match_rate,
            "mean_length_ratio": self.length_ratio.mean if self.length_ratio.count else 1.0,
            "mean_answer_cosine": self.answer_cosine.mean if self.answer_cosine.count else 1.0,
            "min_answer_cosine": self.min_answer_cosine,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels_compared": self.labels_compared,
            "labels_agreed": self.labels_agreed,
            "flips": dict(self.flips),
            "abs_difference": self.abs_difference.to_dict(),
            "max_abs_difference": self.max_abs_difference,
            "cosine": self.cosine.to_dict(),
            "min_cosine": self.min_cosine,
            "primary_latency": self.primary_latency.to_dict(),
            "shadow_latency": self.shadow_latency.to_dict(),
            "answers_compared": self.answers_compared,
            "answers_equal": self.answers_equal,
            "length_ratio": self.length_ratio.to_dict(),
            "answer_cosine": self.answer_cosine.to_dict(),
            "min_answer_cosine": self.min_answer_cosine,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShadowComparison:
        return cls(
            labels_compared=int(data["labels_compared"]),
            labels_agreed=int(data["labels_agreed"]),
            flips={str(k): int(v) for k, v in data["flips"].items()},
            abs_difference=Moments.from_dict(data["abs_difference"]),
            max_abs_difference=float(data["max_abs_difference"]),
            cosine=Moments.from_dict(data["cosine"]),
            min_cosine=float(data["min_cosine"]),
            primary_latency=LatencyHistogram.from_dict(data["primary_latency"]),
            shadow_latency=LatencyHistogram.from_dict(data["shadow_latency"]),
            # comparisons stored before answers were compared read back with none
            answers_compared=int(data.get("answers_compared", 0)),
            answers_equal=int(data.get("answers_equal", 0)),
            length_ratio=Moments.from_dict(data.get("length_ratio") or Moments().to_dict()),
            answer_cosine=Moments.from_dict(data.get("answer_cosine") or Moments().to_dict()),
            min_answer_cosine=float(data.get("min_answer_cosine", 1.0)),
        )


def _paired(
    primary: npt.ArrayLike, shadow: npt.ArrayLike, dtype: Any = None
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    left, right = np.asarray(primary, dtype=dtype), np.asarray(shadow, dtype=dtype)
    if left.shape != right.shape:
        raise ValidationError(
            f"primary answers have shape {left.shape} but shadow answers {right.shape}",
            hint="pass the two answers to the same requests, in the same order",
        )
    return left, right


def _primary(outputs: Mapping[str, npt.NDArray[Any]], name: str | None) -> npt.NDArray[Any]:
    if name is not None and name in outputs:
        return outputs[name]
    return next(iter(outputs.values()))


def compare_outputs(
    comparison: ShadowComparison,
    primary: Mapping[str, npt.NDArray[Any]],
    shadow: Mapping[str, npt.NDArray[Any]],
    name: str | None,
) -> None:
    """Fold one pair of answers (output name → array) into ``comparison``: labels, numbers or
    embeddings by their form. ``name`` is the model's primary output (the first one when None)."""
    left, right = _primary(primary, name), _primary(shadow, name)
    if left.shape != right.shape:
        comparison.update_labels(np.zeros(1), np.ones(1))  # a shape change is a disagreement
        return
    if left.dtype.kind in "iubOUS":
        comparison.update_labels(left.ravel(), right.ravel())
    elif left.ndim == 2 and left.shape[1] > 1 and (name or "").startswith("embedding"):
        comparison.update_embeddings(left, right)
    else:
        comparison.update_numbers(left, right)
