"""The text kinds through the real gate: a TF-IDF classifier registered in MLflow, validated by the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lockgate.gates.text import load_text_evalset

pytestmark = pytest.mark.integration

# Training texts that are not the evaluation set's: other words around the same opinions.
TRAIN = [
    ("love it, excellent value", "positive"), ("great build and the best sound", "positive"),
    ("fantastic, happy with it", "positive"), ("wonderful and exceeded what I hoped", "positive"),
    ("broke quickly, disappointed", "negative"), ("terrible, a waste and useless", "negative"),
    ("awful, cheap and flimsy", "negative"), ("poor, fell apart, returned it", "negative"),
]  # fmt: skip


def _register(name: str, *, is_worse: bool) -> str:
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.dummy import DummyClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    import lockgate
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import register

    frame = pd.DataFrame(TRAIN, columns=["text", "label"])
    head = DummyClassifier(strategy="constant", constant="positive") if is_worse else LogisticRegression(C=10)
    model = make_pipeline(ColumnTransformer([("tfidf", TfidfVectorizer(), "text")]), head)
    with lockgate.track(run_name="sentiment") as run:
        model.fit(frame[["text"]], frame["label"])
        run.log_model(model, signature=infer_signature(frame[["text"]], model.predict(frame[["text"]])))
    return register(connect(), run.run_id, name, alias=None if is_worse else "champion").ref


def test_a_worse_text_classifier_fails_the_gate_against_the_champion(
    mlflow_home: Path, unique: str, tmp_path: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    name = f"sentiment-{unique}"
    champion = _register(name, is_worse=False)
    worse = _register(name, is_worse=True)
    policy = tmp_path / "lockgate.yaml"
    policy.write_text("checks:\n  text_classification:\n    threshold: 0.75\n    margin: 0.02\n")

    code, out, err = cli("validate", champion, "--policy", str(policy), "--against", "none")
    assert code == 0, out + err
    assert "text accuracy (sentiment)" in out

    code, out, err = cli("validate", worse, "--policy", str(policy))
    assert code == 1, out + err
    assert "failed: text accuracy (sentiment)" in out
    assert len(load_text_evalset().texts) == 80
