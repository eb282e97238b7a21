"""Sampled request capture: one in N answered requests of a deployment, kept for replay.

The request path only counts and, for one request in ``every``, appends a tuple of references
(the already-decoded inputs, the outputs, who answered) to a bounded deque: full, the request is
dropped and counted. It never encodes, never copies and never waits. The controller's tick drains
the deque on the event loop and hands the rows to a worker thread, which encodes them
(:func:`encode_inputs`, :func:`encode_outputs`) and writes them to the store in one batch; a
graceful shutdown runs one last tick, so nothing captured is lost. A failed write puts the rows
back (as many as fit) for the next tick.

``lockgate replay`` reads them back with :func:`decode_inputs` and :func:`decode_outputs`.
:class:`CaptureHook` runs it on the deployment loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lockgate.errors import UserError, ValidationError
from lockgate.rollout.store import CapturedRequest, Store

if TYPE_CHECKING:
    # types only: the serving package imports this module, so it cannot import serving back
    from lockgate.serving.live import LiveDeployment
    from lockgate.serving.protocol import ModelInput, Outputs

__all__ = [
    "DEFAULT_KEEP",
    "MAX_CAPTURE_BYTES",
    "CaptureHook",
    "PendingCapture",
    "TrafficCapture",
    "decode_inputs",
    "decode_outputs",
    "encode_inputs",
    "encode_outputs",
]

DEFAULT_KEEP = 10_000
"""Captured requests kept per deployment (the oldest are pruned)."""
MAX_CAPTURE_BYTES = 1024 * 1024
"""A request whose inputs are larger than this is not captured (counted as ``too_large``)."""


@dataclass(frozen=True)
class PendingCapture:
    """A sampled request as the request path left it: references, nothing encoded yet."""

    request_id: bytes
    at: float
    variant: str
    model_name: str
    model_version: str
    status: int
    latency_ms: float
    inputs: ModelInput
    outputs: Outputs | None


class TrafficCapture:
    """The bounded queue of one deployment's sampled requests, and what became of them."""

    def __init__(
        self,
        every: int,
        *,
        max_pending: int = 4096,
        max_bytes: int = MAX_CAPTURE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if every < 1:
            raise ValidationError(f"capture every must be >= 1, got {every}", hint="e.g. 100")
        self.every = every
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self.clock = clock
        self.seen = 0
        self.dropped = 0
        self.too_large = 0
        self.written = 0
        self.flushes = 0
        self._pending: deque[PendingCapture] = deque()

    def take(self) -> bool:
        """Count one answered request; True for the one in ``every`` to capture (request path)."""
        self.seen += 1
        return self.seen % self.every == 0

    def append(
        self,
        *,
        request_id: bytes,
        variant: str,
        model_name: str,
        model_version: str,
        status: int,
        latency_ms: float,
        inputs: ModelInput,
        outputs: Outputs | None,
    ) -> None:
        """Queue a taken request, or drop it when the queue is full (never waits)."""
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return
        self._pending.append(
            PendingCapture(
                request_id,
                self.clock(),
                variant,
                model_name,
                model_version,
                status,
                latency_ms,
                inputs,
                outputs,
            )
        )

    @property
    def pending(self) -> int:
        return len(self._pending)

    def drain(self) -> list[PendingCapture]:
        """Everything queued so far, oldest first (on the event loop, like :meth:`append`)."""
        rows = list(self._pending)
        self._pending.clear()
        return rows

    def requeue(self, rows: Iterable[PendingCapture]) -> None:
        """Put rows whose write failed back in front, as many as fit (the rest are dropped)."""
        rows = list(rows)
        room = max(self.max_pending - len(self._pending), 0)
        kept = rows[-room:] if room else []
        self.dropped += len(rows) - len(kept)
        self._pending.extendleft(reversed(kept))

    def encode(self, deployment: str, rows: Iterable[PendingCapture]) -> list[CapturedRequest]:
        """The store's rows for ``rows`` (in a worker thread); too-large inputs are counted, skipped."""
        encoded = []
        for row in rows:
            if _size_bytes(row.inputs) > self.max_bytes:
                self.too_large += 1
                continue
            encoded.append(
                CapturedRequest(
                    deployment=deployment,
                    request_id=row.request_id.decode("latin-1"),
                    at=row.at,
                    variant=row.variant,
                    model_name=row.model_name,
                    model_version=row.model_version,
                    status=row.status,
                    latency_ms=row.latency_ms,
                    inputs=encode_inputs(row.inputs),
                    outputs=None if row.outputs is None else encode_outputs(row.outputs),
                )
            )
        return encoded

    def summary(self) -> dict[str, int]:
        """JSON for the status: requests seen, captured (written), dropped, skipped, waiting."""
        return {
            "every": self.every,
            "seen": self.seen,
            "written": self.written,
            "dropped": self.dropped,
            "too_large": self.too_large,
            "pending": len(self._pending),
        }


class CaptureHook:
    """Capture on the deployment loop: each deployment gets a :class:`TrafficCapture` of one in
    ``every`` answered requests (a redeploy keeps its queue); after a tick, once every ``flush_s``
    (so that one commit carries many rows), each queue is written to the store, keeping the newest
    ``keep``; the last tick writes whatever waits."""

    def __init__(self, every: int, *, keep: int = DEFAULT_KEEP, flush_s: float = 1.0) -> None:
        self.every = every
        self.keep = keep
        self.flush_s = flush_s
        self._written_at = 0.0

    def attach(self, live: LiveDeployment, previous: LiveDeployment | None) -> None:
        # a redeploy keeps the queue: what was captured under the old spec is still written
        kept = previous.capture if previous is not None else None
        live.capture = kept or TrafficCapture(self.every)

    async def tick(self, deployments: Mapping[str, LiveDeployment], store: Store) -> None:
        await self._save(deployments, store, is_final=False)

    async def close(self, deployments: Mapping[str, LiveDeployment], store: Store) -> None:
        await self._save(deployments, store, is_final=True)

    async def _save(self, deployments: Mapping[str, LiveDeployment], store: Store, *, is_final: bool) -> None:
        """Write each deployment's captured requests in one batch (encoded in a worker thread); a
        failed write puts them back for the next tick."""
        now = time.monotonic()
        if not is_final and now - self._written_at < self.flush_s:
            return
        self._written_at = now
        for name, live in list(deployments.items()):
            capture = live.capture
            if capture is None or not capture.pending:
                continue
            rows = capture.drain()
            try:
                await asyncio.to_thread(self._write, store, name, capture, rows)
            except Exception:
                # a cancelled write (shutdown) still finishes in its thread: only a failure requeues
                capture.requeue(rows)
                raise

    def _write(self, store: Store, name: str, capture: TrafficCapture, rows: list[PendingCapture]) -> None:
        encoded = capture.encode(name, rows)
        store.save_captures(name, encoded)
        capture.written += len(encoded)
        capture.flushes += 1
        if capture.flushes % 20 == 1:  # the first write, then every twentieth: keep the newest
            store.prune_captures(name, keep=self.keep)


def _size_bytes(inputs: ModelInput) -> int:
    if isinstance(inputs, np.ndarray):
        return int(inputs.nbytes)
    return int(inputs.memory_usage(index=False, deep=False).sum())


def encode_inputs(inputs: ModelInput) -> dict[str, Any]:
    """Decoded model inputs as JSON: an array (dtype and nested rows) or a table (split form)."""
    if isinstance(inputs, np.ndarray):
        return {
            "kind": "array",
            "dtype": inputs.dtype.str if inputs.dtype != object else "object",
            "data": inputs.tolist(),
        }
    split = json.loads(inputs.to_json(orient="split", index=False, date_format="iso"))
    return {
        "kind": "frame",
        "columns": [str(c) for c in split["columns"]],
        "dtypes": {str(c): str(t) for c, t in inputs.dtypes.items()},
        "data": split["data"],
    }


def decode_inputs(document: Mapping[str, Any]) -> ModelInput:
    """The model inputs :func:`encode_inputs` wrote, as the predictor takes them."""
    kind = document.get("kind")
    if kind == "array":
        dtype = document["dtype"]
        return np.array(document["data"], dtype=object if dtype == "object" else np.dtype(dtype))
    if kind == "frame":
        import pandas as pd

        frame = pd.DataFrame(document["data"], columns=document["columns"])
        for column, dtype in document.get("dtypes", {}).items():
            try:
                frame[column] = frame[column].astype(dtype)
            except (TypeError, ValueError):
                continue  # keep what JSON gave: the model sees the values it was sent
        return frame
    raise UserError(
        f"a captured request has inputs of unknown kind {kind!r}",
        hint="it was written by another lockgate version; capture again with this one",
    )


def encode_outputs(outputs: Outputs) -> dict[str, Any]:
    """Model outputs as JSON: each named array's dtype and values."""
    return {
        name: {"dtype": array.dtype.str if array.dtype != object else "object", "data": array.tolist()}
        for name, array in outputs.items()
    }


def decode_outputs(document: Mapping[str, Any]) -> Outputs:
    """The outputs :func:`encode_outputs` wrote, as arrays."""
    return {
        name: np.array(item["data"], dtype=object if item["dtype"] == "object" else np.dtype(item["dtype"]))
        for name, item in document.items()
    }
