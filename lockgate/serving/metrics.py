"""Prometheus metrics of the model server, one registry per app.

In one process, requests and their latencies are counted in plain lists by (model, version,
status) and turned into Prometheus families only when ``/metrics`` is scraped: the request path
does a dict lookup, a bisect and three additions (a prometheus-client counter and histogram cost
several microseconds a request, a tenth of a small model's whole budget). With several worker
processes, set ``PROMETHEUS_MULTIPROC_DIR`` (``serve`` does it for ``--workers N``): then the
shared-memory prometheus-client metrics are used, and every worker's numbers are summed on scrape.
The rollout, shadow and drift gauges (:class:`DeploymentCollector`, read from a process's live
deployments) are then written into shared gauges by each worker once a second
(:meth:`ServingMetrics.write_shared_gauges`), each with the :data:`MULTIPROCESS_MODES` way of
combining the workers' values.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from lockgate.serving.live import Deployments

__all__ = ["CONTENT_TYPE", "MULTIPROCESS_MODES", "DeploymentCollector", "ServingMetrics"]

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
_REQUESTS_HELP = "Inference requests answered."
_LATENCY_HELP = "Time from request start to response, by status."
_LABELS = ["model", "version", "status"]

MULTIPROCESS_MODES: dict[str, str] = {
    # the same in every worker (each reads the store): the newest write is the truth
    "lockgate_variant_info": "mostrecent",
    "lockgate_rollout_weight_ratio": "mostrecent",
    "lockgate_rollout_phase": "mostrecent",
    "lockgate_rollout_verdict": "mostrecent",
    # each worker's own shadow copies and drift samples: counts add up, ratios stay per worker
    # (a ``pid`` label; dashboards and rules take the mean or the worst over it)
    "lockgate_shadow_agreement_ratio": "liveall",
    "lockgate_shadow_mirrored": "livesum",
    "lockgate_shadow_dropped": "livesum",
    "lockgate_drift_psi": "liveall",
    "lockgate_drift_js": "liveall",
    "lockgate_drift_features_drifted": "livemax",
    "lockgate_drift_sampled": "livesum",
    "lockgate_prediction_drift_psi": "liveall",
    "lockgate_prediction_drift_js": "liveall",
    "lockgate_embedding_cosine_distance": "liveall",
    "lockgate_embedding_mean_cosine": "liveall",
    "lockgate_alerts": "livesum",
}
"""How the workers' values of each deployment gauge combine in multiprocess mode."""


class _RequestCounts:
    """Requests and a latency histogram per (model, version, status), exported on scrape."""

    def __init__(self, bounds_s: tuple[float, ...]) -> None:
        self.bounds_s = bounds_s
        self.rows: dict[tuple[str, str, int], list[float]] = {}  # count, sum, then bucket counts

    def observe(self, key: tuple[str, str, int], seconds: float) -> None:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0.0] * (len(self.bounds_s) + 3)
        row[0] += 1
        row[1] += seconds
        row[2 + bisect_left(self.bounds_s, seconds)] += 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("lockgate_requests", _REQUESTS_HELP, labels=_LABELS)
        latency = HistogramMetricFamily("lockgate_request_latency_seconds", _LATENCY_HELP, labels=_LABELS)
        edges = [floatToGoString(b) for b in (*self.bounds_s, math.inf)]  # type: ignore[no-untyped-call]
        for (model, version, status), row in sorted(self.rows.items()):
            labels = [model, version, str(status)]
            requests.add_metric(labels, row[0])
            cumulative, running = [], 0.0
            for edge, count in zip(edges, row[2:], strict=True):
                running += count
                cumulative.append((edge, running))
            latency.add_metric(labels, cumulative, row[1])
        yield requests
        yield latency


class ServingMetrics:
    """Requests, latency, batch sizes and queue depth, labelled by model and version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.is_multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self._counts: _RequestCounts | None = None
        if self.is_multiprocess:
            self.requests = Counter("lockgate_requests", _REQUESTS_HELP, _LABELS, registry=self.registry)
            self.latency = Histogram(
                "lockgate_request_latency_seconds",
                _LATENCY_HELP,
                _LABELS,
                buckets=_LATENCY_BUCKETS_S,
                registry=self.registry,
            )
        else:
            self._counts = _RequestCounts(_LATENCY_BUCKETS_S)
            self.registry.register(self._counts)
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
        self._collectors: list[Any] = []
        self._shared: dict[str, tuple[Gauge, list[str]]] = {}
        self._queues: list[tuple[Gauge, Callable[[], int]]] = []

    def add_collector(self, collector: Any) -> None:
        """Export ``collector``'s families: on scrape in one process, through shared gauges with
        several (see :meth:`write_shared_gauges`)."""
        if self.is_multiprocess:
            self._collectors.append(collector)
        else:
            self.registry.register(collector)

    def write_shared_gauges(self) -> None:
        """Multiprocess mode: copy this worker's deployment gauges and queue depths into the shared
        files (a worker thread, once a second). Nothing to do in one process."""
        if not self.is_multiprocess:
            return
        for child, depth in self._queues:
            child.set(float(depth()))
        for collector in self._collectors:
            for family in collector.collect():
                shared = self._shared.get(family.name)
                if shared is None:
                    if not family.samples:
                        continue  # no label names to declare yet
                    names = sorted({k for sample in family.samples for k in sample.labels})
                    mode: Any = MULTIPROCESS_MODES.get(family.name, "liveall")
                    gauge = Gauge(
                        family.name, family.documentation, names, registry=None, multiprocess_mode=mode
                    )
                    shared = self._shared[family.name] = (gauge, names)
                gauge, names = shared
                for sample in family.samples:
                    gauge.labels(*(sample.labels.get(n, "") for n in names)).set(sample.value)

    def observe_request(self, model: str, version: str, status: int, seconds: float) -> None:
        key = (model, version, status)
        if self._counts is not None:
            self._counts.observe(key, seconds)
            return
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
            # a callback gauge cannot be shared across processes: its value is written once a second
            self._queues.append((self.queue_depth.labels(model, version), depth))
            return
        self.queue_depth.labels(model, version).set_function(lambda: float(depth()))

    def render(self) -> bytes:
        """The Prometheus text exposition of everything (all workers' in multiprocess mode)."""
        if self.is_multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


class DeploymentCollector:
    """Rollout gauges for Prometheus, read from the live deployments on each scrape.

    ``lockgate_rollout_weight_ratio{deployment,variant}`` (0-1), ``lockgate_rollout_phase{deployment,
    phase}`` (1 for the current phase), ``lockgate_rollout_verdict{deployment,decision}`` (1 for the
    latest verdict), and the shadow comparison: ``lockgate_shadow_agreement_ratio``,
    ``lockgate_shadow_mirrored``, ``lockgate_shadow_dropped`` by deployment (and, for generated
    answers, ``lockgate_shadow_answer_exact_match_ratio``, ``..._length_ratio``, ``..._cosine``).
    With live drift on:
    ``lockgate_drift_psi`` and ``lockgate_drift_js{deployment,variant,feature}``,
    ``lockgate_drift_features_drifted{deployment,variant}`` and ``lockgate_drift_sampled{deployment}``,
    and of predictions ``lockgate_prediction_drift_psi``/``_js`` and
    ``lockgate_embedding_cosine_distance``/``lockgate_embedding_mean_cosine{deployment,variant}``.
    ``lockgate_variant_info{deployment,variant,model,version}`` joins the request metrics to
    variants. (With alerts on, the alert hook exports ``lockgate_alerts{outcome}`` itself.)
    """

    def __init__(self, manager: Deployments) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        from lockgate.rollout.controller import Phase
        from lockgate.stats.verdict import Decision

        weight = GaugeMetricFamily(
            "lockgate_rollout_weight_ratio",
            "Share of traffic routed to each variant.",
            labels=["deployment", "variant"],
        )
        phase = GaugeMetricFamily(
            "lockgate_rollout_phase", "1 for the rollout's current phase.", labels=["deployment", "phase"]
        )
        verdict = GaugeMetricFamily(
            "lockgate_rollout_verdict",
            "1 for the policy's latest decision.",
            labels=["deployment", "decision"],
        )
        agreement = GaugeMetricFamily(
            "lockgate_shadow_agreement_ratio", "Shadow answers equal to the primary's.", labels=["deployment"]
        )
        mirrored = GaugeMetricFamily(
            "lockgate_shadow_mirrored", "Shadow copies answered.", labels=["deployment"]
        )
        dropped = GaugeMetricFamily(
            "lockgate_shadow_dropped", "Shadow copies dropped (queue full).", labels=["deployment"]
        )
        answers = {
            "exact_match_rate": GaugeMetricFamily(
                "lockgate_shadow_answer_exact_match_ratio",
                "Shadow answers (generated text) equal to the primary's.",
                labels=["deployment"],
            ),
            "mean_length_ratio": GaugeMetricFamily(
                "lockgate_shadow_answer_length_ratio",
                "Shadow answer length over the primary's, mean.",
                labels=["deployment"],
            ),
            "mean_answer_cosine": GaugeMetricFamily(
                "lockgate_shadow_answer_cosine",
                "Cosine of the shadow's and the primary's answer embeddings (MiniLM), mean.",
                labels=["deployment"],
            ),
        }
        info = GaugeMetricFamily(
            "lockgate_variant_info",
            "1 for each variant with the model and version serving it (to join request metrics on).",
            labels=["deployment", "variant", "model", "version"],
        )
        for name, live in sorted(self.manager.live.items()):
            table = live.table
            for variant in table.variants:
                weight.add_metric([name, variant], table.weight_of(variant) / 10_000)
            for variant, served in live.variants.items():  # loaded: a retired variant serves nothing
                info.add_metric([name, variant, served.model_name, served.model_version], 1.0)
            for value in Phase:
                phase.add_metric([name, value.value], 1.0 if live.phase == value.value else 0.0)
            decided = live.decision
            for decision in Decision:
                verdict.add_metric([name, decision.value], 1.0 if decided == decision.value else 0.0)
            summary = live.mirror.summary()
            if summary["labels_compared"] > 0:
                agreement.add_metric([name], summary["agreement"])
            mirrored.add_metric([name], summary["mirrored"])
            dropped.add_metric([name], summary["dropped"])
            if summary["answers_compared"] > 0:
                for key, family in answers.items():
                    family.add_metric([name], summary[key])
        yield from (info, weight, phase, verdict, agreement, mirrored, dropped, *answers.values())
        yield from self._drift()

    def _drift(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        labels = ["deployment", "variant", "feature"]
        psi = GaugeMetricFamily(
            "lockgate_drift_psi", "PSI of live inputs against the reference.", labels=labels
        )
        js = GaugeMetricFamily(
            "lockgate_drift_js", "Jensen-Shannon distance to the reference.", labels=labels
        )
        drifted = GaugeMetricFamily(
            "lockgate_drift_features_drifted",
            "Features past a drift threshold.",
            labels=["deployment", "variant"],
        )
        sampled = GaugeMetricFamily(
            "lockgate_drift_sampled", "Requests sketched for drift.", labels=["deployment"]
        )
        pair = ["deployment", "variant"]
        outputs = {
            "psi": GaugeMetricFamily(
                "lockgate_prediction_drift_psi", "PSI of live predictions against the reference.", labels=pair
            ),
            "js": GaugeMetricFamily(
                "lockgate_prediction_drift_js", "Jensen-Shannon distance of predictions.", labels=pair
            ),
            "cosine_distance": GaugeMetricFamily(
                "lockgate_embedding_cosine_distance",
                "Cosine distance of the live embedding centroid to the reference centroid.",
                labels=pair,
            ),
            "mean_cosine": GaugeMetricFamily(
                "lockgate_embedding_mean_cosine",
                "Mean cosine of live embeddings to the reference centroid.",
                labels=pair,
            ),
        }
        for name, live in sorted(self.manager.live.items()):
            if live.drift is None:
                continue
            for variant, output in sorted(live.drift.output_reports().items()):
                for key, family in outputs.items():
                    value = output.numbers.get(key)
                    if value is not None and math.isfinite(value) and output.live_count:
                        family.add_metric([name, variant], value)
            sampled.add_metric([name], float(live.drift.sampled))
            for variant, report in sorted(live.drift.reports().items()):
                drifted.add_metric([name, variant], float(len(report.drifted)))
                for feature in report.features:
                    for family, key in ((psi, "psi"), (js, "js")):
                        value = feature.numbers.get(key)
                        if value is not None and math.isfinite(value) and feature.live_count:
                            family.add_metric([name, variant, feature.name], value)
        yield from (psi, js, drifted, sampled, *outputs.values())
