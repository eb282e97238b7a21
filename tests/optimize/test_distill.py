from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lockgate.errors import UserError
from lockgate.optimize.distill import distill_encoder, distill_tabular, layers_to_keep, soft_label_rows
from lockgate.optimize.sentences import generate_sentences
from lockgate.optimize.tradeoff import cosine_rows


def test_soft_label_rows_carry_the_distribution() -> None:
    x = np.array([[1.0], [2.0]])
    proba = np.array([[0.25, 0.75], [1.0, 0.0]])
    rows, labels, weights = soft_label_rows(x, proba, np.array(["a", "b"]))
    assert rows.tolist() == [[1.0], [1.0], [2.0]]
    assert labels.tolist() == ["a", "b", "a"]
    assert weights.tolist() == [0.25, 0.75, 1.0]


def test_tabular_student_copies_the_teacher(breast_cancer: tuple[Any, Any]) -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = breast_cancer
    teacher = GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0).fit(x[:400], y[:400])
    for kind in ("logistic", "tree"):
        student = distill_tabular(teacher, x[:400], student=kind, augment=2)  # type: ignore[arg-type]
        agreement = float(np.mean(student.predict(x[400:]) == teacher.predict(x[400:])))
        assert agreement >= 0.9, kind
    with pytest.raises(UserError, match="no predict_proba"):
        distill_tabular(object(), x)


def test_layers_to_keep_spreads_and_keeps_the_last() -> None:
    assert layers_to_keep(6, 3) == [1, 3, 5]
    assert layers_to_keep(6, 1) == [5]
    with pytest.raises(UserError, match="between 1 and 5"):
        layers_to_keep(6, 6)


@pytest.mark.slow  # distils the MiniLM encoder
def test_encoder_student_keeps_fewer_layers_and_tracks_the_teacher(tiny_encoder: Any) -> None:
    # A random tiny teacher: this checks the mechanics; the benchmark measures MiniLM's real student.
    train = generate_sentences(64, seed=1)
    held = generate_sentences(32, seed=2)
    student = distill_encoder(tiny_encoder, train, layers=1, steps=10, learning_rate=1e-4)
    assert len(student[0].auto_model.encoder.layer) == 1
    assert len(tiny_encoder[0].auto_model.encoder.layer) == 2, "the teacher is untouched"
    assert cosine_rows(tiny_encoder.encode(held), student.encode(held)).mean() > 0.95


def test_generated_sentences_vary_and_repeat_by_seed() -> None:
    a = generate_sentences(200, seed=3)
    assert a == generate_sentences(200, seed=3)
    assert a != generate_sentences(200, seed=4)
    assert len(set(a)) > 150
    assert min(map(len, a)) < 40 < max(map(len, a))
