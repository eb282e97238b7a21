"""``lockgate.track``: an MLflow run that records what made the model, with cheap metric logging.

Use it as a context manager or a decorator::

    with lockgate.track(params={"C": 1.0}, datasets=["breast-cancer@1"]) as run:
        for step in range(1000):
            run.log_metric("loss", loss, step=step)   # buffered; one log_batch per 1000 points
        run.log_model(model)

    @lockgate.track(experiment="churn")
    def train() -> None:
        lockgate.log_metric("auc", 0.91)

On entry it records the git commit, branch, dirty flag and a digest of the uncommitted diff; the
Python version, a digest of the installed packages (the list itself as an artifact) and the host; and
the digests of the datasets used, as MLflow dataset inputs. Metrics are buffered and sent with
``log_batch`` when 1,000 are pending, when the oldest has waited ``max_age_s``, and on exit.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lockgate.errors import UserError
from lockgate.tracking.connection import Connection, connect
from lockgate.tracking.environment import capture_code, capture_environment
from lockgate.tracking.refs import validate_artifact_path

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.models.model import ModelInfo

__all__ = [
    "DatasetLink",
    "TrackedRun",
    "active_run",
    "is_flush_due",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "track",
]

MLFLOW_MAX_METRICS_PER_BATCH = 1000
MLFLOW_MAX_PARAMS_PER_BATCH = 100
MLFLOW_MAX_TAGS_PER_BATCH = 100

_active: ContextVar[TrackedRun | None] = ContextVar("lockgate_active_run", default=None)


def is_flush_due(pending: int, oldest_age_s: float, *, max_pending: int, max_age_s: float) -> bool:
    """Whether buffered metrics should be sent now: the buffer is full or its oldest item is stale."""
    return pending >= max_pending or (pending > 0 and oldest_age_s >= max_age_s)


@dataclass(frozen=True)
class DatasetLink:
    """A dataset a run used: a registered version (``name@version``) or a bare path, by digest."""

    name: str
    digest: str
    context: str
    version: int | None = None
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "path": self.path,
            "context": self.context,
        }


@dataclass
class TrackedRun:
    """The handle ``track`` yields: log to one MLflow run, metrics buffered."""

    conn: Connection
    run_id: str
    experiment_id: str
    max_pending: int = MLFLOW_MAX_METRICS_PER_BATCH
    max_age_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _pending: list[Metric] = field(default_factory=list)
    _oldest_at: float = 0.0
    _datasets: list[DatasetLink] = field(default_factory=list)
    flushes: int = 0

    # -- metrics and params -------------------------------------------------------------------
    def log_metric(self, key: str, value: float, step: int = 0, timestamp_ms: int | None = None) -> None:
        """Buffer one metric point; sent with the next batch."""
        from mlflow.entities import Metric

        if not self._pending:
            self._oldest_at = self.clock()
        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        self._pending.append(Metric(key, float(value), ts, int(step)))
        if is_flush_due(
            len(self._pending),
            self.clock() - self._oldest_at,
            max_pending=self.max_pending,
            max_age_s=self.max_age_s,
        ):
            self.flush()

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        ts = int(time.time() * 1000)
        for key, value in metrics.items():
            self.log_metric(key, value, step=step, timestamp_ms=ts)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)) for k, v in params.items()]
        for start in range(0, len(items), MLFLOW_MAX_PARAMS_PER_BATCH):
            chunk = items[start : start + MLFLOW_MAX_PARAMS_PER_BATCH]
            self.conn.client.log_batch(self.run_id, params=chunk, synchronous=True)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(str(k), str(v)) for k, v in tags.items()]
        for start in range(0, len(items), MLFLOW_MAX_TAGS_PER_BATCH):
            chunk = items[start : start + MLFLOW_MAX_TAGS_PER_BATCH]
            self.conn.client.log_batch(self.run_id, tags=chunk, synchronous=True)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def flush(self) -> None:
        """Send every buffered metric now (in batches of at most 1,000, MLflow's limit)."""
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), MLFLOW_MAX_METRICS_PER_BATCH):
            chunk = pending[start : start + MLFLOW_MAX_METRICS_PER_BATCH]
            self.conn.client.log_batch(self.run_id, metrics=chunk, synchronous=True)
            self.flushes += 1

    # -- artifacts ----------------------------------------------------------------------------
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        local = Path(path)
        if artifact_path is not None:
            validate_artifact_path(artifact_path)
        if not local.exists():
            raise UserError(f"artifact path '{local}' does not exist", hint="check the path")
        if local.is_dir():
            self.conn.client.log_artifacts(self.run_id, str(local), artifact_path)
        else:
            self.conn.client.log_artifact(self.run_id, str(local), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        validate_artifact_path(artifact_file, "artifact file")
        self.conn.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        validate_artifact_path(artifact_file, "artifact file")
        self.conn.client.log_dict(self.run_id, dict(data), artifact_file)

    def log_model(
        self,
        model: Any,
        name: str = "model",
        *,
        signature: Any = None,
        input_example: Any = None,
        **kwargs: Any,
    ) -> ModelInfo:
        """Log a scikit-learn estimator or a PyTorch module as an MLflow model of this run."""
        from lockgate.tracking.models import log_model

        return log_model(model, name, signature=signature, input_example=input_example, **kwargs)

    # -- datasets -----------------------------------------------------------------------------
    def use_dataset(self, ref: str | Path, context: str = "train") -> DatasetLink:
        """Record that this run used a dataset version (``name@version``) or a file or folder."""
        from lockgate.tracking.datasets import link_dataset

        link = link_dataset(self.conn, self.run_id, ref, context)
        self._datasets.append(link)
        self.set_tag("lockgate.datasets", json.dumps([d.to_dict() for d in self._datasets]))
        return link

    @property
    def datasets(self) -> tuple[DatasetLink, ...]:
        return tuple(self._datasets)


class track(contextlib.ContextDecorator):  # noqa: N801 - reads as a verb at call sites, like contextlib's
    """Track an MLflow run with lockgate's provenance; a context manager and a decorator."""

    def __init__(
        self,
        experiment: str | None = None,
        *,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        datasets: Sequence[str | Path] = (),
        capture_env: bool = True,
        max_pending: int = MLFLOW_MAX_METRICS_PER_BATCH,
        max_age_s: float = 5.0,
    ) -> None:
        if not 1 <= max_pending <= MLFLOW_MAX_METRICS_PER_BATCH:
            raise UserError(
                f"max_pending={max_pending} is outside 1..{MLFLOW_MAX_METRICS_PER_BATCH}",
                hint="MLflow takes at most 1,000 metrics per batch",
            )
        self._kwargs: dict[str, Any] = {
            "experiment": experiment,
            "run_name": run_name,
            "params": params,
            "tags": tags,
            "datasets": datasets,
            "capture_env": capture_env,
            "max_pending": max_pending,
            "max_age_s": max_age_s,
        }
        self._run: TrackedRun | None = None
        self._token: Any = None

    def _recreate_cm(self) -> track:
        # A fresh instance per decorated call, so recursive or concurrent calls do not share state.
        return track(**self._kwargs)

    def __enter__(self) -> TrackedRun:
        import mlflow

        kw = self._kwargs
        conn = connect()
        experiment_id = conn.experiment_id(kw["experiment"])
        start_tags = {
            "lockgate.tracked": "true",
            **{k: str(v) for k, v in (kw["tags"] or {}).items()},
        }
        active = mlflow.active_run()
        mlflow_run = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=kw["run_name"],
            tags=start_tags,
            nested=active is not None,
        )
        run = TrackedRun(
            conn,
            mlflow_run.info.run_id,
            experiment_id,
            max_pending=kw["max_pending"],
            max_age_s=kw["max_age_s"],
        )
        self._run = run
        self._token = _active.set(run)
        try:
            if kw["capture_env"]:
                _record_provenance(run)
            if kw["params"]:
                run.log_params(kw["params"])
            for ref in kw["datasets"]:
                run.use_dataset(ref)
        except BaseException:
            self._finish("FAILED")
            raise
        return run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish("FINISHED" if exc_type is None else "FAILED")

    def _finish(self, status: str) -> None:
        import mlflow

        run, self._run = self._run, None
        if self._token is not None:
            _active.reset(self._token)
            self._token = None
        if run is None:
            return
        try:
            run.flush()
        finally:
            mlflow.end_run(status=status)


def _record_provenance(run: TrackedRun) -> None:
    code = capture_code()
    env = capture_environment()
    run.set_tags({**code.tags(), **env.tags()})
    run.log_text(env.requirements_text(), "environment/requirements.txt")
    if code.is_dirty and code.diff:
        run.log_text(code.diff, "environment/git.diff")


def active_run() -> TrackedRun:
    """The run of the innermost ``lockgate.track`` block; a UserError outside one."""
    run = _active.get()
    if run is None:
        raise UserError(
            "no lockgate run is active",
            hint="call this inside `with lockgate.track(...):` or a function decorated with it",
        )
    return run


def log_metric(key: str, value: float, step: int = 0) -> None:
    active_run().log_metric(key, value, step=step)


def log_metrics(metrics: Mapping[str, float], step: int = 0) -> None:
    active_run().log_metrics(metrics, step=step)


def log_param(key: str, value: Any) -> None:
    active_run().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    active_run().log_params(params)
