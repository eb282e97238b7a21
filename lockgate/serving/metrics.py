"""Prometheus metrics of the model server, one registry per app.

Labelled children are cached per (model, version, status) so the request path does one dict lookup,
one counter increment and one histogram observation. With several worker processes, set
``PROMETHEUS_MULTIPROC_DIR`` (``serve`` does it for ``--workers N``) and every worker's numbers are
summed on scrape.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["CONTENT_TYPE", "ServingMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServingMetrics:
    """Requests, latency, batch sizes and queue depth, labelled by model and version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.is_multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        labels = ["model", "version", "status"]
        self.requests = Counter(
            "lockgate_requests", "Inference requests answered.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "lockgate_request_latency_seconds",
            "Time from request start to response, by status.",
            labels,
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "lockgate_batch_size",
            "Requests per model call.",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_latency = Histogram(
            "lockgate_batch_latency_seconds",
            "Time of one model call.",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "lockgate_queue_depth",
            "Requests waiting for a model call.",
            ["model", "version"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, model: str, version: str, status: int, seconds: float) -> None:
        key = (model, version, status)
        child = self._children.get(key)
        if child is None:
            status_label = str(status)
            child = (
                self.requests.labels(model, version, status_label),
                self.latency.labels(model, version, status_label),
            )
            self._children[key] = child
        child[0].inc()
        child[1].observe(seconds)

    def batch_observer(self, model: str, version: str) -> Callable[[int, float], None]:
        """A callback for one model's batcher: records each call's size and duration."""
        size = self.batch_size.labels(model, version)
        latency = self.batch_latency.labels(model, version)

        def observe(batch_size: int, seconds: float) -> None:
            size.observe(batch_size)
            latency.observe(seconds)

        return observe

    def track_queue(self, model: str, version: str, depth: Callable[[], int]) -> None:
        if self.is_multiprocess:
            return  # a callback gauge cannot be shared across processes
        self.queue_depth.labels(model, version).set_function(lambda: float(depth()))

    def render(self) -> bytes:
        """The Prometheus text exposition of everything (all workers' in multiprocess mode)."""
        if self.is_multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
