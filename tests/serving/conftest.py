"""Fixtures for the serving tests: a real scikit-learn model logged to a real MLflow store.

The model is trained once per session (a logistic regression on breast-cancer, 30 features) and
logged with a column signature to a SQLite MLflow store in a temporary folder.
"""

from __future__ import annotations

import http.server
import os
import queue
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


@dataclass(frozen=True)
class LoggedModel:
    """A logged, registered model and what a test needs to check its answers."""

    path: Path
    tracking_uri: str
    home: Path
    name: str
    columns: list[str]
    features: np.ndarray
    labels: np.ndarray
    model: Any


def _train() -> tuple[Any, Any]:
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    frame = pd.DataFrame(data.data, columns=list(data.feature_names))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(frame, data.target)
    return model, frame


@pytest.fixture(scope="session")
def logged_model(tmp_path_factory: pytest.TempPathFactory) -> LoggedModel:
    """Train, log with a signature, register as ``cancer`` v1 with the lockgate digest tag."""
    import mlflow
    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from lockgate.tracking.digest import sha256_tree

    home = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    model, frame = _train()
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        experiment = mlflow.set_experiment("serving-tests")
        with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(frame, model.predict(frame)),
                input_example=frame.iloc[:2],
                pip_requirements=["scikit-learn"],
            )
        # the digest the registry records: over the logged model's own artifact folder
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=mlflow.get_logged_model(info.model_id).artifact_location,
                dst_path=str(home / "model"),
            )
        )
        client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
        client.create_registered_model("cancer")
        client.create_model_version(
            "cancer",
            info.model_uri,
            run_id=run.info.run_id,
            tags={"lockgate.artifact_sha256": sha256_tree(local)},
        )
        client.set_registered_model_alias("cancer", "champion", "1")
        client.create_model_version("cancer", info.model_uri, run_id=run.info.run_id)
    mlflow.set_tracking_uri(previous or "")
    return LoggedModel(
        local,
        tracking_uri,
        home,
        "cancer",
        list(frame.columns),
        frame.to_numpy(),
        model.predict(frame),
        model,
    )


@pytest.fixture(scope="module")
def server(logged_model: LoggedModel) -> Iterator[Any]:
    """The real server (uvicorn, uvloop, httptools) on a free 127.0.0.1 port, serving ``cancer``."""
    from lockgate.serving import ServeConfig, build_app, resolve_source, run_server_in_thread

    source = resolve_source(str(logged_model.path), name="cancer")
    app = build_app(source, config=ServeConfig(str(logged_model.path), max_body_bytes=64 * 1024))
    handle = run_server_in_thread(app)
    yield handle
    handle.stop()


def _save_models(root: Path, logged_model: LoggedModel) -> dict[str, Path]:
    """More real models beside the logistic regression: a weakly fitted one, and pyfuncs that
    raise on 50%, 5% and 10% of their calls."""
    import mlflow.pyfunc
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.DataFrame(logged_model.features, columns=logged_model.columns)
    weak = make_pipeline(StandardScaler(), LogisticRegression(C=1e-4)).fit(frame, logged_model.labels)
    signature = infer_signature(frame, logged_model.labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        class Flaky(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
            def __init__(self, rate):  # type: ignore[no-untyped-def]
                self.rate = rate

            def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
                if np.random.default_rng().random() < self.rate:
                    raise RuntimeError("the broken candidate failed")
                return np.zeros(len(model_input), dtype=np.int64)

        # requirements named, as for ``cancer``: else MLflow infers them in a subprocess that
        # imports MLflow and loads the model, seconds each, for files no test reads
        mlflow.sklearn.save_model(
            weak, str(root / "weak"), signature=signature, pip_requirements=["scikit-learn"]
        )
        for name, rate in (("flaky", 0.5), ("flaky5", 0.05), ("flaky10", 0.10)):
            mlflow.pyfunc.save_model(
                str(root / name), python_model=Flaky(rate), signature=signature, pip_requirements=["numpy"]
            )
    return {
        "good": logged_model.path,
        "weak": root / "weak",
        **{name: root / name for name in ("flaky", "flaky5", "flaky10")},
    }


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory, logged_model: LoggedModel) -> dict[str, Path]:
    """Model folders by role: ``good`` (the logistic regression), ``weak``, ``flaky`` (50% errors),
    ``flaky5`` and ``flaky10``."""
    return _save_models(tmp_path_factory.mktemp("rollout-models"), logged_model)


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue.Queue[Any]]]:
    """A tiny webhook on 127.0.0.1: every JSON body POSTed to it lands in the queue. Its URL has a
    secret-looking path, which the audit log must not repeat."""
    received: queue.Queue[Any] = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.put(orjson.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-path", received
    server.shutdown()
    server.server_close()
