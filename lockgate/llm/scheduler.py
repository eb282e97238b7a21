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
from typing import Any

from lockgate.errors import LockgateError, UserError
from lockgate.llm.decoding import Chunk, Usage, finish_reason, next_delta
from lockgate.llm.kv_batch import KVBatch
from lockgate.llm.model import CausalModel
from lockgate.llm.params import SamplingParams
from lockgate.llm.sampling import Chooser

__all__ = [
    "Chunk",
    "DecodeRequest",
    "DecodeScheduler",
    "DecodeStats",
    "Stepper",
    "check_fits",
    "new_sequence",
    "read_chunks",
]

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
class DecodeRequest:
    """One request in a :class:`Stepper`: its prompt, its sampling, its own seeded generator, and
    ``out``, whatever its driver delivers its chunks to (a queue, a request id)."""

    prompt_ids: list[int]
    params: SamplingParams
    generator: random.Random
    out: Any
    generated: list[int] = field(default_factory=list)
    sent: int = 0  # characters of the text that are sure (sent, or held to be sent)
    held: str = ""  # sure text waiting for this stream's next send
    held_steps: int = 0
    has_sent: bool = False
    is_abandoned: bool = False


def check_fits(context: int, prompt_tokens: int, max_tokens: int) -> None:
    """Refuse a request whose prompt and answer cannot fit the model's context (400)."""
    if prompt_tokens + max_tokens > context:
        raise UserError(
            f"the prompt has {prompt_tokens} tokens and max_tokens is {max_tokens}: "
            f"together over the model's context of {context} tokens",
            hint=f"shorten the prompt, or ask for at most {context - prompt_tokens} tokens",
            detail={"field": "max_tokens"},
        )


def new_sequence(prompt_ids: list[int], params: SamplingParams, out: Any) -> DecodeRequest:
    """A request's sequence, its generator seeded from ``params.seed`` (or at random)."""
    seed = params.seed if params.seed is not None else random.getrandbits(63)
    return DecodeRequest(list(prompt_ids), params, random.Random(seed), out)  # noqa: S311


class Stepper:
    """The running batch of one model and the requests waiting to join it; each :meth:`step`
    admits the waiting (up to ``max_batch_size``), runs one decoding step and returns the chunks it
    made. Driven from one thread at a time: :class:`DecodeScheduler`'s thread, or the decoding
    process of :mod:`lockgate.llm.engine`."""

    def __init__(self, model: CausalModel, *, max_batch_size: int = _DEFAULT_MAX_BATCH) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self.stats = DecodeStats()
        self.waiting: collections.deque[DecodeRequest] = collections.deque()
        self.running: list[DecodeRequest] = []
        self._batch = KVBatch(model)

    @property
    def active(self) -> int:
        """Requests waiting to join the batch or in it."""
        return len(self.waiting) + len(self.running)

    def step(self) -> list[tuple[DecodeRequest, Chunk]] | None:
        """One decoding step: the chunks it produced (None when there was nothing to decode)."""
        while self.waiting and len(self.running) < self.max_batch_size:
            self.running.append(self.waiting.popleft())
        self.running = [s for s in self.running if not s.is_abandoned]
        return self._step(list(self.running)) if self.running else None

    def clear(self) -> None:
        """Forget every request (the driver stopped)."""
        self.running, self.waiting = [], collections.deque()
        self._batch = KVBatch(self.model)

    def _step(self, batch: list[DecodeRequest]) -> list[tuple[DecodeRequest, Chunk]]:
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
        self.running = [s for s in self.running if not s.is_abandoned]
        return out

    def _advance(self, sequence: DecodeRequest, token: int) -> Chunk | None:
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
            if sequence.has_sent and sequence.held_steps < steps_per_send(len(self.running)):
                return None
            chunk = Chunk(sequence.held)
            sequence.held, sequence.held_steps, sequence.has_sent = "", 0, True
            return chunk
        sequence.is_abandoned = True  # finished: it leaves the batch
        return Chunk(sequence.held + delta.text, reason, Usage(len(sequence.prompt_ids), count))


class DecodeScheduler:
    """Generates for many requests at once on one :class:`CausalModel` (loaded), decoding in a
    thread of this process."""

    def __init__(self, model: CausalModel, *, max_batch_size: int = _DEFAULT_MAX_BATCH) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self._stepper = Stepper(model, max_batch_size=max_batch_size)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._steps = threading.Lock()  # held for each step; hold() holds it from outside
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def stats(self) -> DecodeStats:
        return self._stepper.stats

    @property
    def active(self) -> int:
        """Requests waiting to join the batch or in it."""
        return self._stepper.active

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """No decoding step runs inside this block (requests still arrive and wait): for tests
        that must see several requests join one batch whatever the timing."""
        with self._steps:
            yield

    def check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        """Refuse a request whose prompt and answer cannot fit the model's context (400)."""
        check_fits(self.model.context, prompt_tokens, max_tokens)

    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[Chunk]:
        """The chunks of one request, as the batch makes them; closing the iterator early
        (a client gone) takes the request out of the batch."""
        self.check_fits(len(prompt_ids), params.max_tokens)
        queue: asyncio.Queue[Chunk] = asyncio.Queue()
        sequence = new_sequence(prompt_ids, params, queue)
        await self._ensure_running()
        self._stepper.waiting.append(sequence)
        self._wake.set()
        try:
            async for chunk in read_chunks(queue):
                yield chunk
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
        self._stepper.clear()

    def _decode_loop(self) -> None:
        while not self._stopping.is_set():
            with self._steps:
                chunks = self._stepper.step()
            if chunks is None:
                self._wake.wait(_IDLE_WAIT_S)
                self._wake.clear()
                continue
            self._deliver(chunks)

    def _deliver(self, chunks: list[tuple[DecodeRequest, Chunk]]) -> None:
        """Hand a step's chunks to the event loop in one call."""
        if not chunks or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is reading any more
            self._loop.call_soon_threadsafe(_put_all, chunks)


async def read_chunks(queue: asyncio.Queue[Chunk]) -> AsyncIterator[Chunk]:
    """A request's chunks from its queue until its last one; a chunk that carries an error
    raises it."""
    while True:
        chunk = _joined(await queue.get(), queue)
        if chunk.error is not None:
            raise LockgateError(chunk.error, hint="the server log has the model's traceback")
        yield chunk
        if chunk.finish_reason is not None:
            return


def _put_all(chunks: list[tuple[DecodeRequest, Chunk]]) -> None:
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
