"""A real server on 127.0.0.1 with the admin API on and one deployment, shared by the attack and
fuzz tests of the session (the fault tests start their own processes)."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import TOKEN

REPORT_ENV = "LOCKGATE_RELIABILITY_REPORT"
"""When set, the figures tests record (fuzz cases, acknowledged writes lost) go to this JSON file;
``benchmarks/bench_reliability.py`` reads them."""


@pytest.fixture(scope="session")
def reliability_report() -> Iterator[dict[str, Any]]:
    """Figures for the benchmark: each test adds to it; written at the end when asked for."""
    report: dict[str, Any] = {"fuzz_cases": 0, "fuzz_5xx": 0, "lost_acknowledged": 0, "acknowledged": 0}
    yield report
    target = os.environ.get(REPORT_ENV)
    if target:
        Path(target).write_text(json.dumps(report, indent=2))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    data = load_breast_cancer()
    frame = pd.DataFrame(data.data, columns=list(data.feature_names))
    model = LogisticRegression(max_iter=3000).fit(frame, data.target)
    path = tmp_path_factory.mktemp("reliability") / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(model, str(path), signature=infer_signature(frame, model.predict(frame)))
    return path


@pytest.fixture(scope="session")
def gateway(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lockgate.rollout.sqlstore import SqlStore
    from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread

    store = SqlStore(f"sqlite:///{tmp_path_factory.mktemp('store') / 'rollouts.db'}")
    config = ServeConfig("", admin_token=TOKEN, tick_s=0.05, follow_registry=False, max_body_bytes=64 * 1024)
    handle = run_server_in_thread(build_app(config=config, deployments=build_deployments(config, store)))
    import httpx

    spec = {  # one deployment served from the start, so /invocations has a model
        "name": "served",
        "variants": {"a": str(model_dir), "b": str(model_dir)},
        "baseline": "a",
        "candidate": "b",
        "strategy": {"type": "direct"},
    }
    created = httpx.put(
        f"{handle.url}/admin/deployments/served",
        json=spec,
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    yield handle
    handle.stop()
    store.close()
