"""Knowledge distillation: a small student learns to copy a large teacher.

Tabular: the teacher's class probabilities (soft labels) on the training rows and on perturbed copies
of them train a small scikit-learn student. A student that takes sample weights learns soft labels
exactly by seeing each row once per class, weighted by the teacher's probability of that class, which
is the cross-entropy against the soft distribution.

Sentence encoder: the student is the teacher with fewer transformer layers (every k-th layer kept,
so it starts from the teacher's weights), trained to reproduce the teacher's embeddings (mean squared
error plus cosine distance) on generated sentences.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError

__all__ = ["StudentKind", "distill_encoder", "distill_tabular", "layers_to_keep", "soft_label_rows"]

StudentKind = Literal["logistic", "tree"]


def soft_label_rows(
    x: npt.NDArray[np.float64], proba: npt.NDArray[np.float64], classes: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[Any], npt.NDArray[np.float64]]:
    """Each row once per class, labelled with that class and weighted by its probability."""
    n, k = proba.shape
    rows = np.repeat(x, k, axis=0)
    labels = np.tile(classes, n)
    weights = proba.reshape(-1)
    keep = weights > 1e-6
    return rows[keep], labels[keep], weights[keep]


def _student(kind: StudentKind, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    if kind == "tree":
        return DecisionTreeClassifier(max_depth=6, min_samples_leaf=5, random_state=seed)
    raise UserError(f"unknown student '{kind}'", hint="choose --student logistic or --student tree")


def distill_tabular(
    teacher: Any,
    x_train: npt.NDArray[np.float64],
    *,
    student: StudentKind = "logistic",
    augment: int = 4,
    noise: float = 0.1,
    seed: int = 0,
) -> Any:
    """A small classifier fitted to ``teacher``'s probabilities on ``x_train`` and ``augment`` noisy copies.

    The copies add Gaussian noise of ``noise`` times each feature's standard deviation, so the student
    also learns the teacher's behaviour between the training rows.
    """
    if not hasattr(teacher, "predict_proba"):
        raise UserError(
            f"the teacher ({type(teacher).__name__}) has no predict_proba, so it gives no soft labels",
            hint="distill a classifier such as gradient boosting",
        )
    rng = np.random.default_rng(seed)
    x = np.asarray(x_train, dtype=np.float64)
    scale = x.std(axis=0) * noise
    extra = [x + rng.normal(0.0, 1.0, size=x.shape) * scale for _ in range(augment)]
    x_all = np.vstack([x, *extra])
    proba = np.asarray(teacher.predict_proba(x_all), dtype=np.float64)
    rows, labels, weights = soft_label_rows(x_all, proba, np.asarray(teacher.classes_))
    model = _student(student, seed)
    if hasattr(model, "steps"):
        model.fit(rows, labels, **{f"{model.steps[-1][0]}__sample_weight": weights})
    else:
        model.fit(rows, labels, sample_weight=weights)
    return model


def layers_to_keep(total: int, keep: int) -> list[int]:
    """Evenly spaced layer indices, always including the last (it shapes the output most)."""
    if not 1 <= keep < total:
        raise UserError(
            f"a student with {keep} layers cannot be made from a teacher with {total}",
            hint=f"pass --layers between 1 and {total - 1}",
        )
    step = total / keep
    return sorted({min(total - 1, round(step * (i + 1)) - 1) for i in range(keep)})


def distill_encoder(
    teacher: Any,
    sentences: Sequence[str],
    *,
    layers: int = 3,
    steps: int = 200,
    batch_size: int = 32,
    learning_rate: float = 5e-5,
    seed: int = 0,
) -> Any:
    """A copy of ``teacher`` keeping ``layers`` of its transformer layers, trained to match its embeddings."""
    import torch

    torch.manual_seed(seed)
    student = copy.deepcopy(teacher)
    transformer = student[0].auto_model
    blocks = transformer.encoder.layer
    kept = layers_to_keep(len(blocks), layers)
    transformer.encoder.layer = torch.nn.ModuleList([blocks[i] for i in kept])
    transformer.config.num_hidden_layers = len(kept)
    if not sentences or steps <= 0:
        return student.eval()
    with torch.no_grad():
        targets = torch.from_numpy(
            np.asarray(
                teacher.encode(list(sentences), batch_size=batch_size, convert_to_numpy=True),
                dtype=np.float32,
            )
        )
    optimizer = torch.optim.AdamW(student.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    # sentence-transformers 6 renamed tokenize to preprocess (and deprecated the old name).
    preprocess = getattr(student, "preprocess", None) or student.tokenize
    student.train()
    for _ in range(steps):
        pick = rng.choice(len(sentences), size=min(batch_size, len(sentences)), replace=False)
        features = preprocess([sentences[i] for i in pick])
        output = student(dict(features))["sentence_embedding"]
        target = targets[pick]
        loss = torch.nn.functional.mse_loss(output, target) * 100.0 + (
            1.0 - torch.nn.functional.cosine_similarity(output, target).mean()
        )
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return student.eval()
