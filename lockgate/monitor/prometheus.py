"""Read a deployment's ``analysis.metrics`` from Prometheus, for the controller's looks.

The shell around :class:`lockgate.rollout.analysis.ExternalMetric`: each metric's query, filled
in for each variant, goes to Prometheus' instant-query API (``GET /api/v1/query``) with a short
timeout; the first sample's value is the variant's number. A query that fails or returns nothing
gives no number (the controller judges only what it has) and is counted in ``failed``, so a
Prometheus that is down never rolls a candidate back or stops the controller.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from lockgate.errors import UserError
from lockgate.rollout.spec import DeploymentSpec

__all__ = ["PrometheusReader"]

_log = logging.getLogger("lockgate.monitor")


class PrometheusReader:
    """Instant queries against the Prometheus at ``url`` (``http(s)://host:port``)."""

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise UserError(
                f"--prometheus-url must be an http:// or https:// URL, got '{url}'",
                hint="e.g. --prometheus-url http://127.0.0.1:9090",
            )
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.queries = 0
        self.failed = 0

    def query(self, promql: str) -> float | None:
        """The value of the first sample ``promql`` returns now (None: no sample, or no answer)."""
        self.queries += 1
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout_s) as answer:  # noqa: S310
                document = json.loads(answer.read())
        # Prometheus down, slow or refusing the query: no number this look, never an exception
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.failed += 1
            _log.warning("Prometheus query failed (%s): %s", promql, exc)
            return None
        data = document.get("data", {}) if isinstance(document, dict) else {}
        result = data.get("result")
        sample: object = None
        if data.get("resultType") == "scalar" and isinstance(result, list):
            sample = result
        elif isinstance(result, list) and result and isinstance(result[0], dict):
            sample = result[0].get("value")
        if not isinstance(sample, list) or len(sample) != 2:
            self.failed += 1
            return None
        try:
            value = float(sample[1])
        except (TypeError, ValueError):
            self.failed += 1
            return None
        return value if math.isfinite(value) else None

    def values(self, spec: DeploymentSpec) -> Mapping[str, Mapping[str, float]]:
        """Each of the spec's metrics for each of its variants: name → variant → value."""
        out: dict[str, dict[str, float]] = {}
        for metric in spec.analysis.metrics:
            if metric.is_generation:
                continue  # lockgate's own generation metric: the controller reads its counters
            found = {}
            for variant in spec.variants:
                value = self.query(metric.query_for(spec.name, variant))
                if value is not None:
                    found[variant] = value
            out[metric.name] = found
        return out
