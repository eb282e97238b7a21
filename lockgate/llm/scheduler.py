"""Continuous batching at the decoding step: one running batch, joined and left between steps.

A thread of its own owns the running batch and decodes without waiting for the event loop: before
each step the waiting requests join the batch (up to ``max_batch_size``); the step
(:meth:`~lockgate.llm.kv_batch.KVBatch.step`) feeds each sequence's newest token and keeps the
attention keys and values of the earlier ones; after it, each sequence takes its token, works out
the text that is sure (:func:`~lockgate.llm.decoding.next_delta`) and leaves the batch when it is
finished, or when its reader went away (a client that disconnected frees its slot at the next
step). The step's chunks go to the requests' queues in one hand-off to the event loop, which only
writes them out. So a request that arrives while others decode starts at the next step, not after
them, and the event loop's work never stalls the model between steps.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from lockgate.errors import LockgateError, UserError
from lockgate.llm.decoding import Chunk, Usage, finish_reason, next_delta
from lockgate.llm.kv_batch import KVBatch
from lockgate.llm.model import CausalModel
from lockgate.llm.params import SamplingParams
from lockgate.llm.sampling import Chooser

__all__ = ["Chunk", "DecodeScheduler", "DecodeStats"]

_DEFAULT_MAX_BATCH = 16
_STREAMS_PER_STEP = 4  # streams sent to per decoding step, on average, when the batch is larger
_IDLE_WAIT_S = 0.5
log = logging.getLogger(__name__)


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
    generator: random.Random
    out: asyncio.Queue[Chunk]
    generated: list[int] = field(default_factory=list)
    sent: int = 0  # characters of the text that are sure (sent, or held to be sent)
    held: str = ""  # sure text waiting for this stream's next send
    held_steps: int = 0
    has_sent: bool = False
    is_abandoned: bool = False


class DecodeScheduler:
    """Generates for many requests at once on one :class:`CausalModel` (loaded)."""

    def __init__(self, model: CausalModel, *, max_batch_size: int = _DEFAULT_MAX_BATCH) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self.stats = DecodeStats()
        self._waiting: collections.deque[_Sequence] = collections.deque()
        self._running: list[_Sequence] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._steps = threading.Lock()  # held for each step; hold() holds it from outside
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batch = KVBatch(model)

    @property
    def active(self) -> int:
        """Requests waiting to join the batch or in it."""
        return len(self._waiting) + len(self._running)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """No decoding step runs inside this block (requests still arrive and wait): for tests
        that must see several requests join one batch whatever the timing."""
        with self._steps:
            yield

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
        sequence = _Sequence(list(prompt_ids), params, random.Random(seed), asyncio.Queue())  # noqa: S311
        await self._ensure_running()
        self._waiting.append(sequence)
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

    async def _ensure_running(self) -> None:
        """Start the decoding thread for this event loop (after one that served another loop
        stopped: a loop's queues are only fed by a thread started for it)."""
        loop = asyncio.get_running_loop()
        if self._thread is not None and self._thread.is_alive() and self._loop is loop:
            return
        if self._thread is not None:
            await self.stop()
        self._loop = loop
        self._stopping.clear()
        self._thread = threading.Thread(target=self._decode_loop, name="lockgate-decode", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop the decoding thread (requests still in the batch get no more chunks)."""
        thread = self._thread
        self._stopping.set()
        self._wake.set()
        if thread is not None:
            await asyncio.to_thread(thread.join, 30)
        self._thread = None
        self._running, self._waiting = [], collections.deque()
        self._batch = KVBatch(self.model)

    def _decode_loop(self) -> None:
        while not self._stopping.is_set():
            with self._steps:
                while self._waiting and len(self._running) < self.max_batch_size:
                    self._running.append(self._waiting.popleft())
                self._running = [s for s in self._running if not s.is_abandoned]
                chunks = self._step(list(self._running)) if self._running else None
            if chunks is None:
                self._wake.wait(_IDLE_WAIT_S)
                self._wake.clear()
                continue
            self._deliver(chunks)

    def _step(self, batch: list[_Sequence]) -> list[tuple[_Sequence, Chunk]]:
        """One decoding step of ``batch``: the chunks it produced, for each sequence that has one."""
        choosers = [Chooser(s.params.temperature, s.params.top_p, s.generator) for s in batch]
        sequences = [s.prompt_ids + s.generated for s in batch]
        try:
            tokens = self._batch.step(batch, sequences, choosers)
        # a failing model fails the requests in the batch, not the scheduler
        except Exception as exc:
            log.exception("the model failed a decoding step")
            self._batch.clear()
            for sequence in batch:
                sequence.is_abandoned = True
            error = Chunk("", error=f"the model failed: {type(exc).__name__}: {exc}")
            return [(sequence, error) for sequence in batch]
        self.stats.steps += 1
        self.stats.tokens += len(batch)
        self.stats.max_batch_size_seen = max(self.stats.max_batch_size_seen, len(batch))
        out = []
        for sequence, token in zip(batch, tokens, strict=True):
            chunk = self._advance(sequence, token)
            if chunk is not None:
                out.append((sequence, chunk))
        self._running = [s for s in self._running if not s.is_abandoned]
        return out

    def _deliver(self, chunks: list[tuple[_Sequence, Chunk]]) -> None:
        """Hand a step's chunks to the event loop in one call."""
        if not chunks or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is reading any more
            self._loop.call_soon_threadsafe(_put_all, chunks)

    def _advance(self, sequence: _Sequence, token: int) -> Chunk | None:
        """Take one token into ``sequence``: the chunk to send now, if any (the last one when it
        is done)."""
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
            sequence.held += delta.text
            if not sequence.held:
                return None
            sequence.held_steps += 1
            if sequence.has_sent and sequence.held_steps < steps_per_send(len(self._running)):
                return None
            chunk = Chunk(sequence.held)
            sequence.held, sequence.held_steps, sequence.has_sent = "", 0, True
            return chunk
        sequence.is_abandoned = True  # finished: it leaves the batch
        return Chunk(sequence.held + delta.text, reason, Usage(len(sequence.prompt_ids), count))


def _put_all(chunks: list[tuple[_Sequence, Chunk]]) -> None:
    for sequence, chunk in chunks:
        sequence.out.put_nowait(chunk)


def steps_per_send(running: int) -> int:
    """How many decoding steps a stream's text is gathered for before it is sent, with ``running``
    sequences in the batch: every step for up to 4, then one send per ``running / 4`` steps (every
    4th step at 16). Each send costs the event loop an event, a write and a wake-up, which on a
    small model cost as much as the step itself; keeping the sends per step near 4 keeps the
    server's throughput near the model's own. The first text of an answer is sent at once, so the
    time to first token does not change, and the answer's text is the same."""
    return max(1, -(-running // _STREAMS_PER_STEP))


def _joined(chunk: Chunk, pending: asyncio.Queue[Chunk]) -> Chunk:
    """``chunk`` and the chunks already queued behind it, as one: a reader that fell behind (a slow
    client, a busy event loop) catches up with one write instead of one per token."""
    while chunk.finish_reason is None and chunk.error is None and not pending.empty():
        following = pending.get_nowait()
        if following.error is not None:
            return following
        chunk = Chunk(chunk.text + following.text, following.finish_reason, following.usage)
    return chunk
