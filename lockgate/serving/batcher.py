"""Adaptive micro-batching: many concurrent requests, one model call.

Each model has one queue and one worker task. The worker takes every request waiting (up to
``max_batch_size``), optionally waits up to ``max_wait_ms`` for more, concatenates their rows, calls
the model once and hands each request its slice of the outputs. While a batch runs, new requests
queue up, so batches grow with load and stay at one request when the server is idle: no fixed delay
is needed for batching to pay off.

The model runs in a dedicated thread (numpy, ONNX Runtime and torch release the GIL), or inline on
the event loop when ``is_inline`` is set: for a model whose batch call takes tens of microseconds,
the thread hand-off would cost more than the call. A full queue raises
:class:`~lockgate.errors.ServiceUnavailable` (503 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from lockgate.errors import ServiceUnavailable, UserError
from lockgate.serving.protocol import ModelInput, Outputs

__all__ = ["BatchPolicy", "Batcher", "concat_inputs", "split_outputs"]


@dataclass(frozen=True)
class BatchPolicy:
    """How one model's requests are batched.

    ``max_batch_size`` counts requests per model call; ``max_wait_ms`` is how long the worker waits
    for more after the first (0: take only what is already queued); ``max_queue`` bounds waiting
    requests (beyond it: 503). ``is_inline`` runs the model on the event loop instead of a thread.
    """

    max_batch_size: int = 32
    max_wait_ms: float = 0.0
    max_queue: int = 1024
    is_inline: bool = False

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise UserError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.max_wait_ms < 0:
            raise UserError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.max_queue < 1:
            raise UserError(f"max_queue must be >= 1, got {self.max_queue}")


def concat_inputs(items: Sequence[ModelInput]) -> ModelInput:
    """Stack request inputs along the batch axis (arrays or DataFrames)."""
    if len(items) == 1:
        return items[0]
    first = items[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(items, axis=0)
    import pandas as pd

    frames: list[pd.DataFrame] = [item for item in items if isinstance(item, pd.DataFrame)]
    return pd.concat(frames, ignore_index=True)


def split_outputs(outputs: Outputs, row_counts: Sequence[int]) -> list[Outputs]:
    """Give each request its rows back; outputs without a batch axis go to everyone unchanged."""
    total = sum(row_counts)
    if len(row_counts) == 1:
        return [outputs]
    parts: list[Outputs] = [{} for _ in row_counts]
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise UserError(
                f"the model returned {array.shape[0] if array.ndim else 'a scalar'} rows for "
                f"output '{name}' but was given {total}",
                hint="a served model must return one output row per input row",
            )
        start = 0
        for index, count in enumerate(row_counts):
            parts[index][name] = array[start : start + count]
            start += count
    return parts


_Pending = tuple[ModelInput, int, "asyncio.Future[Outputs]"]


class Batcher:
    """One model's queue and worker: ``start``, then ``submit`` from the event loop, then ``stop``.

    ``on_batch(size, seconds)`` is called after every model call (for metrics).
    """

    def __init__(
        self,
        predict: Callable[[ModelInput], Outputs],
        policy: BatchPolicy,
        *,
        on_batch: Callable[[int, float], None] | None = None,
        name: str = "model",
    ) -> None:
        self.predict = predict
        self.policy = policy
        self.on_batch = on_batch
        self.name = name
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight = 0

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a model call (not counting the batch running now)."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Requests submitted and not yet answered."""
        return self._in_flight

    def start(self) -> None:
        if self._worker is not None:
            return
        self._wakeup = asyncio.Event()
        if not self.policy.is_inline:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"lockgate-{self.name}")
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"batch-{self.name}")

    async def stop(self) -> None:
        """Answer everything queued, then stop the worker and its thread."""
        while self._queue or self._in_flight:
            await asyncio.sleep(0.005)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._executor is not None:
            executor, self._executor = self._executor, None
            # waited for off the event loop: a model call stuck in its own code must not freeze
            # the loop, so a shutdown with a deadline (the grace period) can still give up on it
            await _off_the_loop(executor.shutdown)

    async def submit(self, inputs: ModelInput, n_rows: int) -> Outputs:
        """Queue one request's rows and wait for its outputs."""
        if self._worker is None or self._wakeup is None:
            raise ServiceUnavailable(f"model '{self.name}' is not accepting requests", retry_after_s=1.0)
        if len(self._queue) >= self.policy.max_queue:
            raise ServiceUnavailable(
                f"model '{self.name}' has {len(self._queue)} requests waiting (the limit)",
                hint="retry after the Retry-After delay, or raise max_queue / add workers",
                retry_after_s=1.0,
            )
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        self._queue.append((inputs, n_rows, future))
        self._in_flight += 1
        self._wakeup.set()
        try:
            return await future
        finally:
            self._in_flight -= 1

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        policy = self.policy
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            if policy.max_wait_ms > 0 and len(self._queue) < policy.max_batch_size:
                deadline = loop.time() + policy.max_wait_ms / 1000.0
                while len(self._queue) < policy.max_batch_size:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), remaining)
                    except TimeoutError:
                        break
            batch: list[_Pending] = []
            while self._queue and len(batch) < policy.max_batch_size:
                batch.append(self._queue.popleft())
            batch = [item for item in batch if not item[2].done()]
            if batch:
                await self._call(batch, loop)

    async def _call(self, batch: list[_Pending], loop: asyncio.AbstractEventLoop) -> None:
        row_counts = [item[1] for item in batch]
        started = time.perf_counter()
        try:
            inputs = concat_inputs([item[0] for item in batch])
            if self._executor is None:
                outputs = self.predict(inputs)
            else:
                outputs = await loop.run_in_executor(self._executor, self.predict, inputs)
            parts = split_outputs(outputs, row_counts)
        # A failing batch is retried request by request so one bad input fails only its request;
        # the error itself reaches that request's handler, which turns it into a response.
        except Exception as exc:  # noqa: BLE001
            if len(batch) > 1:
                for item in batch:
                    await self._call([item], loop)
                return
            if not batch[0][2].done():
                batch[0][2].set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - started)
        for item, part in zip(batch, parts, strict=True):
            if not item[2].done():
                item[2].set_result(part)


async def _off_the_loop(call: Callable[[], object]) -> None:
    """Run ``call`` in a daemon thread and await it. Not the loop's default executor: a thread
    there that never returns would also hold up ``asyncio.run``'s exit."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def run() -> None:
        try:
            call()
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(finish)

    threading.Thread(target=run, name="lockgate-stop", daemon=True).start()
    await done
