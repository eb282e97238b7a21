"""Model-quality metrics as pure numpy functions, each knowing its direction and what it reads.

A metric reads labels (``y_pred``) or scores (``y_score``, the probability of the positive class) for
classification, or predictions for regression. They agree with scikit-learn's (the tests check) and
are cheap enough to recompute thousands of times in a bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from lockgate.errors import ValidationError

__all__ = ["METRICS", "Metric", "get_metric", "known_metric"]

FloatArray = npt.NDArray[np.float64]
Reads = Literal["label", "score", "value"]
_EPS = 1e-15


@dataclass(frozen=True)
class Metric:
    """A named metric: ``fn(y_true, y)`` where ``y`` is what ``reads`` says."""

    name: str
    fn: Callable[[FloatArray, FloatArray], float]
    greater_is_better: bool
    reads: Reads
    task: Literal["classification", "regression"]

    def __call__(self, y_true: FloatArray, y: FloatArray) -> float:
        return self.fn(y_true, y)


def accuracy(y_true: FloatArray, y_pred: FloatArray) -> float:
    return float(np.mean(y_true == y_pred)) if y_true.size else float("nan")


def error_rate(y_true: FloatArray, y_pred: FloatArray) -> float:
    return 1.0 - accuracy(y_true, y_pred)


def _confusion(y_true: FloatArray, y_pred: FloatArray) -> tuple[float, float, float]:
    positive_true, positive_pred = y_true == 1, y_pred == 1
    tp = float(np.sum(positive_true & positive_pred))
    fp = float(np.sum(~positive_true & positive_pred))
    fn = float(np.sum(positive_true & ~positive_pred))
    return tp, fp, fn


def precision(y_true: FloatArray, y_pred: FloatArray) -> float:
    tp, fp, _ = _confusion(y_true, y_pred)
    return tp / (tp + fp) if tp + fp else 0.0


def recall(y_true: FloatArray, y_pred: FloatArray) -> float:
    tp, _, fn = _confusion(y_true, y_pred)
    return tp / (tp + fn) if tp + fn else 0.0


def f1(y_true: FloatArray, y_pred: FloatArray) -> float:
    tp, fp, fn = _confusion(y_true, y_pred)
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def roc_auc(y_true: FloatArray, y_score: FloatArray) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic (ties count one half); NaN for one class."""
    positive = y_true == 1
    n_pos = int(np.sum(positive))
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(y_score)
    return float((np.sum(ranks[positive]) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y_true: FloatArray, y_score: FloatArray) -> float:
    p = np.clip(y_score, _EPS, 1 - _EPS)
    return float(-np.mean(np.where(y_true == 1, np.log(p), np.log(1 - p)))) if y_true.size else float("nan")


def rmse(y_true: FloatArray, y_pred: FloatArray) -> float:
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2))) if y_true.size else float("nan")


def mae(y_true: FloatArray, y_pred: FloatArray) -> float:
    return float(np.mean(np.abs(y_true - y_pred))) if y_true.size else float("nan")


def r2(y_true: FloatArray, y_pred: FloatArray) -> float:
    total = float(np.sum((y_true - np.mean(y_true)) ** 2)) if y_true.size else 0.0
    if total == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((y_true - y_pred) ** 2)) / total


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", accuracy, True, "label", "classification"),
        Metric("error_rate", error_rate, False, "label", "classification"),
        Metric("precision", precision, True, "label", "classification"),
        Metric("recall", recall, True, "label", "classification"),
        Metric("f1", f1, True, "label", "classification"),
        Metric("roc_auc", roc_auc, True, "score", "classification"),
        Metric("log_loss", log_loss, False, "score", "classification"),
        Metric("rmse", rmse, False, "value", "regression"),
        Metric("mae", mae, False, "value", "regression"),
        Metric("r2", r2, True, "value", "regression"),
    )
}


def get_metric(name: str) -> Metric:
    """The metric called ``name``; a ValidationError listing the known ones otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValidationError(
            f"unknown metric '{name}'", hint=f"known metrics: {', '.join(sorted(METRICS))}"
        ) from None


def known_metric(name: str) -> str:
    """A settings validator: ``name`` itself when it is a known metric, else a ValueError listing them."""
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}'; known metrics are {', '.join(sorted(METRICS))}")
    return name
