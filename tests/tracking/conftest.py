from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def trained_run() -> Callable[..., str]:
    """Train a small logistic regression on breast-cancer inside a tracked run; return the run id."""

    def make(run_name: str = "lr", c: float = 1.0, datasets: tuple[str, ...] = ()) -> str:
        from mlflow.models import infer_signature
        from sklearn.datasets import load_breast_cancer
        from sklearn.linear_model import LogisticRegression

        import lockgate

        x, y = load_breast_cancer(return_X_y=True)
        with lockgate.track(run_name=run_name, params={"C": c}, datasets=list(datasets)) as run:
            model = LogisticRegression(C=c, max_iter=3000).fit(x, y)
            run.log_metric("accuracy", float(model.score(x, y)))
            run.log_model(model, signature=infer_signature(x, model.predict(x)))
        return run.run_id

    return make
