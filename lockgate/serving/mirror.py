"""The shadow mirror of a served deployment: copies of requests to the shadow variant, compared.

Copies go through a bounded queue: when it is full the copy is dropped and counted, so a slow
candidate never slows the primary. Each answer is folded into a
:class:`~lockgate.rollout.shadow.ShadowComparison` with the primary's
(:func:`~lockgate.rollout.shadow.compare_outputs`), and the shadow's latency and errors count in
its own statistics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from lockgate.rollout.shadow import ShadowComparison, compare_outputs
from lockgate.serving.protocol import InferenceRequest, Outputs
from lockgate.serving.variant import Variant

__all__ = ["ShadowMirror"]

_Copy = tuple[Variant, InferenceRequest, Outputs, float, "int | None"]


@dataclass
class ShadowMirror:
    """The bounded queue of shadow copies and the comparison of their answers."""

    max_queue: int = 256
    comparison: ShadowComparison = field(default_factory=ShadowComparison)
    mirrored: int = 0
    dropped: int = 0
    failed: int = 0
    _queue: asyncio.Queue[_Copy] | None = None
    _worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._worker is None:
            queue: asyncio.Queue[_Copy] = asyncio.Queue(self.max_queue)
            self._queue = queue
            self._worker = asyncio.get_running_loop().create_task(self._run(queue), name="lockgate-shadow")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    def offer(
        self,
        shadow: Variant,
        request: InferenceRequest,
        primary: Outputs,
        primary_ms: float,
        unit: int | None = None,
    ) -> None:
        """Queue a copy, or drop it when the queue is full (never waits)."""
        if self._queue is None:
            return
        try:
            self._queue.put_nowait((shadow, request, primary, primary_ms, unit))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _run(self, queue: asyncio.Queue[_Copy]) -> None:
        while True:
            shadow, request, primary, primary_ms, unit = await queue.get()
            started = time.perf_counter()
            is_error = False
            try:
                answer = await shadow.infer(request)
            # the shadow's failure is a number in its statistics, never a failed primary request
            except Exception:  # noqa: BLE001
                is_error = True
                self.failed += 1
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            shadow.record(elapsed_ms, is_error=is_error, unit=unit)
            self.mirrored += 1
            if not is_error:
                compare_outputs(self.comparison, primary, answer, shadow.predictor.primary_output)
                self.comparison.record_latency([primary_ms], [elapsed_ms])

    def summary(self) -> dict[str, float]:
        return {
            **self.comparison.summary(),
            "mirrored": float(self.mirrored),
            "dropped": float(self.dropped),
            "failed": float(self.failed),
        }
