"""The shadow mirror of a served deployment: copies of requests to the shadow variant, compared.

Copies go through a bounded queue: when it is full the copy is dropped and counted, so a slow
candidate never slows the primary. Each answer is folded into a
:class:`~lockgate.rollout.shadow.ShadowComparison` with the primary's
(:func:`~lockgate.rollout.shadow.compare_outputs`), and the shadow's latency and errors count in
its own statistics.

A generative shadow gets a copy of a chat or completion once the primary's answer is complete
(:meth:`ShadowMirror.offer_answer`): the copy generates the shadow's own answer (with its own
prompt version), and the two texts are compared (exact match, length ratio, and the cosine of
their MiniLM sentence embeddings, computed in a thread). Without the MiniLM extra installed the
cosine is left out, and said once in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError
from lockgate.llm.similarity import answer_embeddings
from lockgate.rollout.shadow import ShadowComparison, compare_outputs
from lockgate.serving.protocol import InferenceRequest, Outputs
from lockgate.serving.variant import Variant

__all__ = ["ShadowMirror"]

_log = logging.getLogger("lockgate.serving")

Embed = Callable[[Sequence[str]], npt.NDArray[np.float64]]
"""Texts → unit-length sentence embeddings, one row each."""


@dataclass(frozen=True)
class _Copy:
    shadow: Variant
    primary_ms: float
    unit: int | None
    request: InferenceRequest | None = None
    primary: Outputs | None = None
    answer: Callable[[], Awaitable[str]] | None = None  # a generative copy: the shadow's answer
    primary_text: str = ""


@dataclass
class ShadowMirror:
    """The bounded queue of shadow copies and the comparison of their answers."""

    max_queue: int = 256
    comparison: ShadowComparison = field(default_factory=ShadowComparison)
    mirrored: int = 0
    dropped: int = 0
    failed: int = 0
    embed: Embed | None = answer_embeddings
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
        self._put(_Copy(shadow, primary_ms, unit, request=request, primary=primary))

    def offer_answer(
        self,
        shadow: Variant,
        answer: Callable[[], Awaitable[str]],
        primary_text: str,
        primary_ms: float,
        unit: int | None = None,
    ) -> None:
        """Queue a generative copy: ``answer`` generates the shadow's text (never waits)."""
        self._put(_Copy(shadow, primary_ms, unit, answer=answer, primary_text=primary_text))

    def _put(self, copy: _Copy) -> None:
        if self._queue is None:
            return
        try:
            self._queue.put_nowait(copy)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _run(self, queue: asyncio.Queue[_Copy]) -> None:
        while True:
            copy = await queue.get()
            started = time.perf_counter()
            answer: Any = None
            is_error = False
            try:
                if copy.answer is not None:
                    answer = await copy.answer()
                elif copy.request is not None:
                    answer = await copy.shadow.infer(copy.request)
            # the shadow's failure is a number in its statistics, never a failed primary request
            except Exception:  # noqa: BLE001
                is_error = True
                self.failed += 1
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            copy.shadow.record(elapsed_ms, is_error=is_error, unit=copy.unit)
            self.mirrored += 1
            if is_error:
                continue
            if copy.answer is not None:
                await self._compare_answers(copy.primary_text, str(answer))
            elif copy.primary is not None:
                compare_outputs(self.comparison, copy.primary, answer, copy.shadow.predictor.primary_output)
            self.comparison.record_latency([copy.primary_ms], [elapsed_ms])

    async def _compare_answers(self, primary: str, shadow: str) -> None:
        cosines = None
        embed = self.embed
        if embed is not None:
            try:
                rows = await asyncio.to_thread(embed, [primary, shadow])
                cosines = [float(np.clip(np.dot(rows[0], rows[1]), -1.0, 1.0))]  # float32 rounding
            except UserError as exc:  # the MiniLM extra is not installed: compare without it
                _log.warning("shadow answers are compared without embeddings: %s (%s)", exc.message, exc.hint)
                self.embed = None
        self.comparison.update_answers([primary], [shadow], cosines)

    def summary(self) -> dict[str, float]:
        return {
            **self.comparison.summary(),
            "mirrored": float(self.mirrored),
            "dropped": float(self.dropped),
            "failed": float(self.failed),
        }
