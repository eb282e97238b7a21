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
the datasets used, as MLflow dataset inputs, each with the digest of its files as they are on disk:
a dataset version whose files differ from its snapshot stops the run before it starts, unless
``on_changed="record"`` (``lockgate.tracking.reading``). ``lockgate.data.load`` inside the block
records what the script reads the same way. Metrics are buffered and sent with
``log_batch`` when 1,000 are pending, when the oldest has waited ``max_age_s``, and on exit.

A batch leaves the buffer only when the server has acknowledged it. A transient failure (the server
down or restarting) is retried with backoff for ``retry_window_s``; after that the points go to a
local spill file (``lockgate.tracking.spill``) that ``lockgate runs sync`` sends later, and the
training carries on. The run's final status is sent, or spilled with its points, so a run never
stays RUNNING because its server was away.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lockgate.errors import StoreUnreachable, UserError
from lockgate.tracking.connection import Connection, connect, server_errors
from lockgate.tracking.environment import capture_code, capture_environment
from lockgate.tracking.refs import validate_artifact_path
from lockgate.tracking.spill import DEFAULT_RETRY_WINDOW_S, SpillFile, backoff_s, is_transient

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.models.model import ModelInfo

__all__ = [
    "ON_CHANGED",
    "DatasetLink",
    "TrackedRun",
    "active_run",
    "current_run",
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
ON_CHANGED = ("refuse", "record")

_active: ContextVar[TrackedRun | None] = ContextVar("lockgate_active_run", default=None)
_log = logging.getLogger("lockgate.tracking")


def is_flush_due(pending: int, oldest_age_s: float, *, max_pending: int, max_age_s: float) -> bool:
    """Whether buffered metrics should be sent now: the buffer is full or its oldest item is stale."""
    return pending >= max_pending or (pending > 0 and oldest_age_s >= max_age_s)


@dataclass(frozen=True)
class DatasetLink:
    """A dataset a run used: a registered version (``name@version``) or a bare path, by digest.

    ``verified`` says how the digest was obtained from the bytes: ``"read"`` (the script read them
    through ``lockgate.data``), ``"hashed"`` (``track``/``use_dataset`` hashed the files when linking),
    or ``""`` (recorded on trust, by a lockgate from before the check: "unverified").
    ``changed_from`` is the version the files were meant to be when they were not (the run went on
    with ``on_changed="record"``; ``version`` is then None: the bytes are not a registered version).
    """

    name: str
    digest: str
    context: str
    version: int | None = None
    path: str | None = None
    verified: str = ""
    changed_from: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "path": self.path,
            "context": self.context,
            "verified": self.verified or None,
            "changed_from": self.changed_from,
        }

    def is_same_data(self, other: DatasetLink) -> bool:
        return (self.name, self.digest, self.context, self.version) == (
            other.name,
            other.digest,
            other.context,
            other.version,
        )


@dataclass
class TrackedRun:
    """The handle ``track`` yields: log to one MLflow run, metrics buffered."""

    conn: Connection
    run_id: str
    experiment_id: str
    max_pending: int = MLFLOW_MAX_METRICS_PER_BATCH
    max_age_s: float = 5.0
    retry_window_s: float = DEFAULT_RETRY_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _pending: list[Metric] = field(default_factory=list)
    _oldest_at: float = 0.0
    _datasets: list[DatasetLink] = field(default_factory=list)
    spill: SpillFile | None = None
    flushes: int = 0
    retries: int = 0

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
            with server_errors(self.conn, f"log to run '{self.run_id}'"):
                self.conn.client.log_batch(self.run_id, params=chunk, synchronous=True)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(str(k), str(v)) for k, v in tags.items()]
        for start in range(0, len(items), MLFLOW_MAX_TAGS_PER_BATCH):
            chunk = items[start : start + MLFLOW_MAX_TAGS_PER_BATCH]
            with server_errors(self.conn, f"log to run '{self.run_id}'"):
                self.conn.client.log_batch(self.run_id, tags=chunk, synchronous=True)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def flush(self) -> None:
        """Send every buffered metric now (in batches of at most 1,000, MLflow's limit).

        A batch leaves the buffer once the server acknowledged it, or once it is in the spill file
        (after ``retry_window_s`` of failed retries, and for the rest of the run after that).
        """
        while self._pending:
            chunk = self._pending[:MLFLOW_MAX_METRICS_PER_BATCH]
            if self.spill is None and not self._send_metrics(chunk):
                self.spill = SpillFile.for_run(
                    self.conn.settings.home, self.run_id, self.conn.settings.tracking_uri
                )
                _log.warning(
                    "lockgate: the tracking server at %s did not acknowledge run %s's metrics for "
                    "%.0f s; they go to %s from now on (training continues); send them with "
                    "`lockgate runs sync`",
                    self.conn.settings.tracking_uri,
                    self.run_id,
                    self.retry_window_s,
                    self.spill.path,
                )
            if self.spill is not None:
                self.spill.append_metrics(chunk)
            del self._pending[: len(chunk)]
            self.flushes += 1

    def _send_metrics(self, chunk: Sequence[Metric]) -> bool:
        return self._call_with_retry(
            f"log metrics to run '{self.run_id}'",
            lambda: self.conn.client.log_batch(self.run_id, metrics=list(chunk), synchronous=True),
        )

    def _call_with_retry(self, action: str, call: Callable[[], object]) -> bool:
        """Call, retrying transient failures with backoff while ``retry_window_s`` lasts (plus one
        request's timeout at most); False when it ran out. Other failures raise."""
        started = self.clock()
        for attempt in itertools.count():
            try:
                with server_errors(self.conn, action):
                    call()
                return True
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = backoff_s(attempt)
                if self.clock() - started + delay > self.retry_window_s:
                    return False
                self.retries += 1
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def end(self, status: str) -> None:
        """Send the run's final status; when the server is away, spill it with the points."""
        import mlflow

        active = mlflow.active_run()
        is_ended = False
        if active is not None and active.info.run_id == self.run_id:
            # mlflow.end_run leaves MLflow's run stack first, then sends the status (once here)
            with contextlib.suppress(Exception), _no_http_retries():
                mlflow.end_run(status=status)
                is_ended = True
        if not is_ended and self.spill is None:
            is_ended = self._call_with_retry(
                f"end run '{self.run_id}'", lambda: self.conn.client.set_terminated(self.run_id, status)
            )
        if not is_ended:
            self.spill = self.spill or SpillFile.for_run(
                self.conn.settings.home, self.run_id, self.conn.settings.tracking_uri
            )
            self.spill.append_status(status)

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
    def use_dataset(
        self,
        ref: str | Path,
        context: str = "train",
        *,
        on_changed: str = "refuse",
        data_root: Path | None = None,
    ) -> DatasetLink:
        """Record that this run used a dataset version (``name@version``, its files hashed and checked
        against the snapshot) or a file or folder (hashed); see ``track`` for ``on_changed``."""
        from lockgate.tracking.reading import resolve_link

        _check_on_changed(on_changed)
        link = resolve_link(self.conn, ref, context, on_changed=on_changed, data_root=data_root)
        return self.add_link(link)

    def add_link(self, link: DatasetLink) -> DatasetLink:
        """Record ``link`` on the run (once: a second link to the same data only upgrades how it was
        verified, a read beating a hash) as an MLflow dataset input and in ``lockgate.datasets``."""
        from lockgate.tracking.reading import CHANGED_TAG, VERIFIED_READ, log_dataset_input

        for index, known in enumerate(self._datasets):
            if known.is_same_data(link):
                if link.verified == VERIFIED_READ and known.verified != VERIFIED_READ:
                    self._datasets[index] = link
                    self._tag_datasets()
                return self._datasets[index]
        log_dataset_input(self.conn, self.run_id, link)
        self._datasets.append(link)
        self._tag_datasets()
        changed = [f"{d.name}@{d.changed_from}" for d in self._datasets if d.changed_from is not None]
        if link.changed_from is not None:
            self.set_tag(CHANGED_TAG, ", ".join(changed))
        return link

    def _tag_datasets(self) -> None:
        self.set_tag("lockgate.datasets", json.dumps([d.to_dict() for d in self._datasets]))

    @property
    def datasets(self) -> tuple[DatasetLink, ...]:
        return tuple(self._datasets)


class track(contextlib.ContextDecorator):  # noqa: N801 - reads as a verb at call sites, like contextlib's
    """Track an MLflow run with lockgate's provenance; a context manager and a decorator.

    ``datasets``: versions (``NAME@VERSION``) or files and folders the run uses. A version's files
    are found like ``lockgate.data.path`` finds them (``data_root``, else ``LOCKGATE_DATA_ROOT``, else
    where the snapshot recorded them) and hashed before the run starts; when they differ from the
    version, ``on_changed="refuse"`` (the default) raises an IntegrityError naming the files, and
    ``on_changed="record"`` records their digest as an unregistered version (``changed_from`` the
    version, tag ``lockgate.datasets.changed``).
    """

    def __init__(
        self,
        experiment: str | None = None,
        *,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        datasets: Sequence[str | Path] = (),
        on_changed: str = "refuse",
        data_root: Path | None = None,
        capture_env: bool = True,
        max_pending: int = MLFLOW_MAX_METRICS_PER_BATCH,
        max_age_s: float = 5.0,
        retry_window_s: float = DEFAULT_RETRY_WINDOW_S,
    ) -> None:
        _check_on_changed(on_changed)
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
            "on_changed": on_changed,
            "data_root": data_root,
            "capture_env": capture_env,
            "max_pending": max_pending,
            "max_age_s": max_age_s,
            "retry_window_s": retry_window_s,
        }
        self._run: TrackedRun | None = None
        self._token: Any = None

    def _recreate_cm(self) -> track:
        # A fresh instance per decorated call, so recursive or concurrent calls do not share state.
        return track(**self._kwargs)

    def __enter__(self) -> TrackedRun:
        import mlflow

        from lockgate.tracking.reading import resolve_link

        kw = self._kwargs
        conn = connect()
        experiment_id = conn.experiment_id(kw["experiment"])
        # the datasets' files are hashed and checked before the run exists: a refusal leaves no run
        links = [
            resolve_link(conn, ref, "train", on_changed=kw["on_changed"], data_root=kw["data_root"])
            for ref in kw["datasets"]
        ]
        start_tags = {
            "lockgate.tracked": "true",
            **{k: str(v) for k, v in (kw["tags"] or {}).items()},
        }
        active = mlflow.active_run()
        name = kw["experiment"] or conn.settings.experiment
        with server_errors(
            conn,
            f"create a run in experiment '{name}' (id {experiment_id})",
            hint=f"ask its owner or an admin of the server for EDIT on experiment '{name}', or set "
            "LOCKGATE_EXPERIMENT to an experiment of your own",
        ):
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
            retry_window_s=kw["retry_window_s"],
        )
        self._run = run
        self._token = _active.set(run)
        try:
            if kw["capture_env"]:
                _record_provenance(run)
            if kw["params"]:
                run.log_params(kw["params"])
            for link in links:
                run.add_link(link)
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
        self._finish("FINISHED" if exc_type is None else "FAILED", is_raising=exc_type is not None)

    def _finish(self, status: str, *, is_raising: bool = True) -> None:
        """Flush, then end the run whatever happened; an error of the block (``is_raising``) is the
        one the caller sees, never one from ending the run."""
        run, self._run = self._run, None
        if self._token is not None:
            _active.reset(self._token)
            self._token = None
        if run is None:
            return
        try:
            run.flush()
        except BaseException:
            run.end("FAILED")
            if is_raising:
                return  # the block's own error propagates; this one is secondary
            raise
        run.end(status)
        if run.spill is not None and not is_raising:
            raise StoreUnreachable(
                f"the tracking server at '{run.conn.settings.tracking_uri}' did not acknowledge run "
                f"'{run.run_id}' within {run.retry_window_s:.0f} s; its unsent metrics and final status "
                f"are in '{run.spill.path}'",
                hint="run `lockgate runs sync` when the server is back: it sends them and ends the run",
            )


@contextlib.contextmanager
def _no_http_retries() -> Iterator[None]:
    import os

    saved = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
        else:
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = saved


def _record_provenance(run: TrackedRun) -> None:
    code = capture_code()
    env = capture_environment()
    run.set_tags({**code.tags(), **env.tags()})
    run.log_text(env.requirements_text(), "environment/requirements.txt")
    if code.is_dirty and code.diff:
        run.log_text(code.diff, "environment/git.diff")


def _check_on_changed(on_changed: str) -> None:
    if on_changed not in ON_CHANGED:
        raise UserError(
            f"on_changed={on_changed!r} is not one of {', '.join(map(repr, ON_CHANGED))}",
            hint="'refuse' (the default) stops a run whose dataset files differ from the version; "
            "'record' records them as an unregistered version",
        )


def current_run() -> TrackedRun | None:
    """The run of the innermost ``lockgate.track`` block, or None outside one."""
    return _active.get()


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
