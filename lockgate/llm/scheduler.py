"""Continuous batching at the decoding step: one running batch, joined and left between steps.

An asyncio task owns the running batch; the model runs in one worker thread, one step at a time
(:meth:`~lockgate.llm.kv_batch.KVBatch.step`: each step feeds each sequence's newest token and
keeps the attention keys and values of the earlier ones). Before each step the waiting requests join the
batch (up to ``max_batch_size``); after it, each sequence takes its token, sends the text that is
sure (:func:`~lockgate.llm.decoding.next_delta`) and leaves the batch when it is finished, or when
its reader went away (a client that disconnected frees its slot at the next step). So a request
that arrives while others decode starts at the next step, not after them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from lockgate.errors import LockgateError, UserError
from lockgate.llm.decoding import Chunk, Usage, finish_reason, next_delta
from lockgate.llm.kv_batch import KVBatch
from lockgate.llm.model import CausalModel
from lockgate.llm.params import SamplingParams

__all__ = ["Chunk", "DecodeScheduler", "DecodeStats"]

_DEFAULT_MAX_BATCH = 16


def _model_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="lockgate-decode")


@dataclass
class DecodeStats:
    """What the scheduler did: steps run, tokens made, and the largest batch a step carried."""

    steps: int = 0
    tokens: int = 0
    max_batch_size_seen: int = 0


@dataclass(eq=False)
class _Sequence:
    prompt_ids: list[int]
    params: SamplingParams
    generator: torch.Generator
    out: asyncio.Queue[Chunk]
    generated: list[int] = field(default_factory=list)
    sent: int = 0
    is_abandoned: bool = False


class DecodeScheduler:
    """Generates for many requests at once on one :class:`CausalModel` (loaded)."""

    def __init__(self, model: CausalModel, *, max_batch_size: int = _DEFAULT_MAX_BATCH) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self.stats = DecodeStats()
        self._waiting: collections.deque[_Sequence] = collections.deque()
        self._running: list[_Sequence] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = _model_thread()
        self._batch = KVBatch(model)

    @property
    def active(self) -> int:
        """Requests waiting to join the batch or in it."""
        return len(self._waiting) + len(self._running)

    def check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        """Refuse a request whose prompt and answer cannot fit the model's context (400)."""
        if prompt_tokens + max_tokens > self.model.context:
            raise UserError(
                f"the prompt has {prompt_tokens} tokens and max_tokens is {max_tokens}: "
                f"together over the model's context of {self.model.context} tokens",
                hint=f"shorten the prompt, or ask for at most {self.model.context - prompt_tokens} tokens",
                detail={"field": "max_tokens"},
            )

    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[Chunk]:
        """The chunks of one request, as the batch makes them; closing the iterator early
        (a client gone) takes the request out of the batch."""
        self.check_fits(len(prompt_ids), params.max_tokens)
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        sequence = _Sequence(list(prompt_ids), params, torch.Generator().manual_seed(seed), asyncio.Queue())
        self._ensure_running()
        self._waiting.append(sequence)
        assert self._wake is not None
        self._wake.set()
        try:
            while True:
                chunk = _joined(await sequence.out.get(), sequence.out)
                if chunk.error is not None:
                    raise LockgateError(chunk.error, hint="the server log has the model's traceback")
                yield chunk
                if chunk.finish_reason is not None:
                    return
        finally:
            sequence.is_abandoned = True

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="lockgate-decode")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = _model_thread()  # started on first use: the scheduler may start again
        self._batch = KVBatch(self.model)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            while self._waiting and len(self._running) < self.max_batch_size:
                self._running.append(self._waiting.popleft())
            self._running = [s for s in self._running if not s.is_abandoned]
            if not self._running:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = list(self._running)
            choosers = [(s.params.temperature, s.params.top_p, s.generator) for s in batch]
            sequences = [s.prompt_ids + s.generated for s in batch]
            try:
                tokens = await loop.run_in_executor(
                    self._executor, self._batch.step, batch, sequences, choosers
                )
            except asyncio.CancelledError:
                raise
            # a failing model fails the requests in the batch, not the scheduler
            except Exception as exc:  # noqa: BLE001
                self._batch.clear()
                for sequence in batch:
                    sequence.out.put_nowait(Chunk("", error=f"the model failed: {type(exc).__name__}: {exc}"))
                    sequence.is_abandoned = True
                continue
            self.stats.steps += 1
            self.stats.tokens += len(batch)
            self.stats.max_batch_size_seen = max(self.stats.max_batch_size_seen, len(batch))
            for sequence, token in zip(batch, tokens, strict=True):
                self._advance(sequence, token)
            self._running = [s for s in self._running if not s.is_abandoned]

    def _advance(self, sequence: _Sequence, token: int) -> None:
        """Take one token into ``sequence``; send what is sure; finish it when it is done."""
        is_eos = token == self.model.eos_token_id
        if not is_eos:
            sequence.generated.append(token)
        params = sequence.params
        count = len(sequence.generated) + (1 if is_eos else 0)
        context_left = self.model.context - len(sequence.prompt_ids) - len(sequence.generated)
        text = self.model.decode(sequence.generated)
        might_end = is_eos or count >= params.max_tokens or context_left <= 0
        delta = next_delta(text, sequence.sent, params.stop, is_last=might_end)
        sequence.sent += len(delta.text)
        reason = finish_reason(
            is_stopped=delta.is_stopped,
            is_eos=is_eos,
            completion_tokens=count,
            max_tokens=params.max_tokens,
            context_left=context_left,
        )
        if reason is None:
            if delta.text:
                sequence.out.put_nowait(Chunk(delta.text))
            return
        sequence.out.put_nowait(Chunk(delta.text, reason, Usage(len(sequence.prompt_ids), count)))
        sequence.is_abandoned = True  # finished: it leaves the batch


def _joined(chunk: Chunk, pending: asyncio.Queue[Chunk]) -> Chunk:
    """``chunk`` and the chunks already queued behind it, as one: a reader that fell behind (a slow
    client, a busy event loop) catches up with one write instead of one per token."""
    while chunk.finish_reason is None and chunk.error is None and not pending.empty():
        following = pending.get_nowait()
        if following.error is not None:
            return following
        chunk = Chunk(chunk.text + following.text, following.finish_reason, following.usage)
    return chunk
