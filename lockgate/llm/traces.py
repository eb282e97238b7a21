"""Generations recorded as MLflow traces: sampled, written by a background thread, never on the
request path; and read back for ``lockgate traces DEPLOYMENT``.

A generation that the sample picks becomes a :class:`Generation` (what was asked, what came back,
tokens, timings, and which deployment, variant, model version and prompt version answered). The
request hands it to :meth:`TraceWriter.offer`, which only puts it on a bounded queue: when the
queue is full (MLflow slow or down) the record is dropped and counted, so a slow tracking server
costs traces, not latency. The writer thread creates one trace per generation with MLflow's
client (``start_trace`` / ``end_trace`` with the generation's own start and end times), in the
experiment ``lockgate-traces`` unless told otherwise, tagged so they can be found per deployment.

Sampling is decided from the request id (:func:`is_sampled`), so every gateway that sees the same
request makes the same choice.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from lockgate.errors import UserError

if TYPE_CHECKING:
    from lockgate.settings import Settings
    from lockgate.tracking.connection import Connection

__all__ = [
    "DEFAULT_EXPERIMENT",
    "Generation",
    "TraceRow",
    "TraceSampler",
    "TraceWriter",
    "check_rate",
    "is_sampled",
    "list_traces",
    "trace_link",
]

DEFAULT_EXPERIMENT = "lockgate-traces"
_TAG = "lockgate."
_QUEUE = 1024
_TEXT_LIMIT = 4000  # characters of prompt and answer kept in a trace
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    """One answered generation request, as a trace records it."""

    request_id: str
    deployment: str
    variant: str
    model_name: str
    model_version: str
    prompt: str
    answer: str
    prompt_tokens: int
    completion_tokens: int
    start_ns: int
    end_ns: int
    ttft_ms: float | None = None
    finish_reason: str | None = None
    prompt_version: str | None = None
    error: str | None = None
    endpoint: str = "/v1/chat/completions"

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def tags(self) -> dict[str, str]:
        """The trace's tags: what ``lockgate traces`` filters and shows."""
        tags = {
            "deployment": self.deployment,
            "variant": self.variant,
            "model": f"{self.model_name}/{self.model_version}",
            "request_id": self.request_id,
        }
        if self.prompt_version:
            tags["prompt_version"] = self.prompt_version
        return {_TAG + key: value for key, value in tags.items()}

    def attributes(self) -> dict[str, Any]:
        """The span's attributes: tokens and timings."""
        attributes: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "duration_ms": round(self.duration_ms, 3),
            "finish_reason": self.finish_reason or "",
            "endpoint": self.endpoint,
        }
        if self.ttft_ms is not None:
            attributes["ttft_ms"] = round(self.ttft_ms, 3)
        return attributes


def is_sampled(request_id: str, rate: float) -> bool:
    """Whether the request with ``request_id`` is traced at sampling ``rate`` (0 to 1): the same
    answer for the same id, on every gateway."""
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


def check_rate(rate: float) -> float:
    if not 0.0 <= rate <= 1.0:
        raise UserError(
            f"the trace sample rate must be between 0 and 1, not {rate}",
            hint="e.g. --trace-sample 0.1 records one generation in ten",
        )
    return rate


@dataclass
class TraceWriter:
    """Writes offered generations as MLflow traces from one daemon thread."""

    tracking_uri: str
    experiment: str = DEFAULT_EXPERIMENT
    capacity: int = _QUEUE
    # lockgate's settings, when the experiment should be made the way lockgate makes its own (its
    # artifacts under LOCKGATE_HOME, not in ./mlruns); None: MLflow's defaults
    settings: Settings | None = None
    written: int = 0
    dropped: int = 0
    failed: int = 0
    _queue: queue.Queue[Generation | None] = field(init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._queue = queue.Queue(maxsize=self.capacity)

    def offer(self, generation: Generation) -> bool:
        """Queue ``generation`` for writing; never waits. False (and counted) when the queue is full."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lockgate-traces", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(generation)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued (for up to ``timeout_s``), then stop the thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)
        self._thread = None
        import mlflow

        mlflow.flush_trace_async_logging()  # MLflow exports ended traces from a queue of its own

    def _experiment_id(self, client: Any) -> str:
        if self.settings is not None:
            from lockgate.tracking.connection import connect

            return connect(self.settings).experiment_id(self.experiment)
        found = client.get_experiment_by_name(self.experiment)
        return (
            str(found.experiment_id) if found is not None else str(client.create_experiment(self.experiment))
        )

    def _run(self) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(self.tracking_uri)
        experiment_id: str | None = None
        while True:
            generation = self._queue.get()
            if generation is None:
                return
            try:
                if experiment_id is None:
                    experiment_id = self._experiment_id(client)
                _write(client, experiment_id, generation)
                self.written += 1
            # a trace is best effort: a store error loses this trace, never the server
            except Exception as exc:  # noqa: BLE001
                self.failed += 1
                log.warning("could not write a trace to %s: %s", self.tracking_uri, exc)


def _write(client: Any, experiment_id: str, generation: Generation) -> None:
    span = client.start_trace(
        name=f"{generation.deployment}/{generation.variant}",
        span_type="LLM",
        inputs={"prompt": generation.prompt[:_TEXT_LIMIT]},
        attributes={key: str(value) for key, value in generation.attributes().items()},
        tags=generation.tags(),
        experiment_id=experiment_id,
        start_time_ns=generation.start_ns,
    )
    client.end_trace(
        span.trace_id,
        outputs={"answer": generation.answer[:_TEXT_LIMIT]},
        attributes=generation.attributes(),
        status="ERROR" if generation.error else "OK",
        end_time_ns=generation.end_ns,
    )


@dataclass
class TraceSampler:
    """What a server holds with ``--trace-sample``: which requests to trace, and the writer."""

    writer: TraceWriter
    rate: float

    def wants(self, request_id: str) -> bool:
        return is_sampled(request_id, self.rate)

    def record(self, generation: Generation) -> None:
        self.writer.offer(generation)

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True)
class TraceRow:
    """A recorded generation as ``lockgate traces`` lists it."""

    trace_id: str
    timestamp_ms: int
    duration_ms: float | None
    status: str
    tags: Mapping[str, str]
    attributes: Mapping[str, Any]
    link: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "timestamp_ms": self.timestamp_ms,
            "duration_ms": self.duration_ms,
            "status": self.status,
            "tags": dict(self.tags),
            "attributes": dict(self.attributes),
            "link": self.link,
        }


def trace_link(tracking_uri: str, experiment_id: str, trace_id: str) -> str | None:
    """The MLflow UI page of a trace, when the tracking store is a server (``http(s)://``)."""
    if urlparse(tracking_uri).scheme not in ("http", "https"):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/traces?selectedEvaluationId={trace_id}"


def list_traces(
    connection: Connection, deployment: str, *, limit: int = 20, experiment: str = DEFAULT_EXPERIMENT
) -> list[TraceRow]:
    """The most recent ``limit`` traces of ``deployment``, newest first."""
    client = connection.client
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    escaped = deployment.replace("'", "\\'")
    traces = client.search_traces(
        locations=[str(found.experiment_id)],
        filter_string=f"tags.`{_TAG}deployment` = '{escaped}'",
        max_results=limit,
        order_by=["timestamp_ms DESC"],
        include_spans=True,
    )
    rows = []
    for trace in traces:
        info = trace.info
        spans = trace.data.spans if trace.data is not None else []
        attributes = dict(spans[0].attributes) if spans else {}
        tags = {key.removeprefix(_TAG): value for key, value in info.tags.items() if key.startswith(_TAG)}
        rows.append(
            TraceRow(
                info.trace_id,
                int(info.request_time),
                float(info.execution_duration) if info.execution_duration is not None else None,
                str(info.state),
                tags,
                attributes,
                trace_link(connection.settings.tracking_uri, str(found.experiment_id), info.trace_id),
            )
        )
    return rows
