from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from lockgate.errors import ValidationError
from lockgate.gates.metrics import METRICS, get_metric

labels = st.lists(st.integers(0, 1), min_size=2, max_size=60)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_label_metrics_agree_with_sklearn(data: st.DataObject) -> None:
    y_true = np.asarray(data.draw(labels), dtype=np.float64)
    y_pred = np.asarray(data.draw(st.lists(st.integers(0, 1), min_size=y_true.size, max_size=y_true.size)))
    y_pred = y_pred.astype(np.float64)
    assert METRICS["accuracy"](y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert METRICS[name](y_true, y_pred) == pytest.approx(fn(y_true, y_pred, zero_division=0.0))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_score_metrics_agree_with_sklearn(data: st.DataObject) -> None:
    y_true = np.asarray(data.draw(labels), dtype=np.float64)
    scores = data.draw(
        st.lists(st.floats(0.01, 0.99), min_size=y_true.size, max_size=y_true.size).map(np.asarray)
    )
    if 0 < y_true.sum() < y_true.size:
        assert METRICS["roc_auc"](y_true, scores) == pytest.approx(skm.roc_auc_score(y_true, scores))
    else:
        assert np.isnan(METRICS["roc_auc"](y_true, scores))
    assert METRICS["log_loss"](y_true, scores) == pytest.approx(skm.log_loss(y_true, scores, labels=[0, 1]))


def test_regression_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(3)
    y, p = rng.normal(size=50), rng.normal(size=50)
    assert METRICS["rmse"](y, p) == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert METRICS["mae"](y, p) == pytest.approx(skm.mean_absolute_error(y, p))
    assert METRICS["r2"](y, p) == pytest.approx(skm.r2_score(y, p))


def test_directions_and_reads() -> None:
    assert METRICS["accuracy"].greater_is_better and not METRICS["log_loss"].greater_is_better
    assert METRICS["roc_auc"].reads == "score"
    assert METRICS["rmse"].task == "regression"


def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="unknown metric 'auc'") as info:
        get_metric("auc")
    assert info.value.hint is not None and "roc_auc" in info.value.hint
