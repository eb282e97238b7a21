"""Decoding in a process of its own: the model's steps never wait for the server's event loop.

With the decoding thread of :class:`~lockgate.llm.scheduler.DecodeScheduler`, the model and the
event loop that streams the answers share one Python interpreter lock. Each step of a small model
is mostly Python (the modules' ``forward`` s), so the model waits whenever the event loop writes
out chunks. Serving engines run their scheduler in a process apart from their HTTP server for this
reason (vLLM's engine core is one), and :class:`ProcessDecoder` does the same.

A child process loads the model and drives the same :class:`~lockgate.llm.scheduler.Stepper`. It
is a fresh interpreter: nothing is forked from a threaded parent, and the parent's ``__main__`` is
not imported again. The server keeps only the tokenizer, to encode prompts and check their length.
Requests go to the child over a socket pair, and each step's chunks come back in one message, read
by the event loop when the socket is readable. So the answers are the same as with the thread,
token for token, seed for seed.

What it guarantees:
- **Loading.** A model that fails to load in the child fails :meth:`ProcessDecoder.load` with the
  child's message.
- **A child that dies.** Every request in flight ends with an error chunk: a 500 or a last error
  event, never a hang. The next request starts a new child.
- **A client that leaves.** Its request is cancelled in the child, which frees its slot at the next
  step, as the thread does.
- **Stopping.** :meth:`ProcessDecoder.stop` ends the child: asked first, killed after 10 s. A
  child whose parent died sees its pipe close and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing.connection
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from lockgate.errors import LockgateError, UserError
from lockgate.llm.decoding import Chunk
from lockgate.llm.model import CausalModel
from lockgate.llm.params import SamplingParams
from lockgate.llm.scheduler import DecodeStats, Stepper, check_fits, new_sequence, read_chunks

__all__ = ["ProcessDecoder"]

log = logging.getLogger(__name__)
_LOAD_TIMEOUT_S = 300.0
_STOP_TIMEOUT_S = 10.0


class ProcessDecoder:
    """Generates for many requests at once on a model loaded in a child process (the interface of
    :class:`~lockgate.llm.scheduler.DecodeScheduler`)."""

    def __init__(self, model: CausalModel, *, max_batch_size: int = 16, threads: int | None = None) -> None:
        self.model = model  # the tokenizer and the context here; the weights in the child
        self.max_batch_size = max_batch_size
        self.threads = threads
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[int, asyncio.Queue[Chunk]] = {}
        # who waits for the child's next reply of each kind ("stats", "held")
        self._waiters: dict[str, list[asyncio.Future[Any]]] = {"stats": [], "held": []}
        self._ids = itertools.count()
        self._starting = asyncio.Lock()  # one restart at a time, however many requests find it dead

    @property
    def active(self) -> int:
        """Requests sent to the child and not finished."""
        return len(self._queues)

    def check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        check_fits(self.model.context, prompt_tokens, max_tokens)

    def load(self) -> None:
        """Start the child and wait until it has loaded the model (blocking: the loading thread)."""
        ours, theirs = socket.socketpair()
        command = [
            sys.executable,
            "-m",
            "lockgate.llm.engine",
            str(theirs.fileno()),
            str(self.model.path),
            str(self.model.tokenizer_path),
            str(self.max_batch_size),
            str(self.threads or 0),
        ]
        # a fresh interpreter (not multiprocessing's spawn, which imports the parent's __main__
        # again: a user's script without a __main__ guard would start a server in the child)
        process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        conn = multiprocessing.connection.Connection(ours.detach())
        kind, message = "failed", "it sent nothing"
        if not conn.poll(_LOAD_TIMEOUT_S):
            message = f"it did not finish loading in {_LOAD_TIMEOUT_S:g} s"
        else:
            try:
                kind, message = conn.recv()
            except EOFError:
                message = f"it exited with code {_wait(process, 5)}"
        if kind != "ready":
            conn.close()
            process.kill()
            _wait(process, 5)
            raise UserError(
                f"the decoding process could not load '{self.model.path}': {message}",
                hint="its traceback is in the server's log above",
            )
        self._process, self._conn = process, conn

    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[Chunk]:
        """The chunks of one request; closing the iterator early cancels it in the child."""
        self.check_fits(len(prompt_ids), params.max_tokens)
        conn = await self._connection()
        key = next(self._ids)
        queue: asyncio.Queue[Chunk] = asyncio.Queue()
        self._queues[key] = queue
        sequence = new_sequence(prompt_ids, params, key)
        is_done = False
        try:
            conn.send(("add", key, sequence))
            async for chunk in read_chunks(queue):
                is_done = chunk.finish_reason is not None
                yield chunk
        finally:
            if self._queues.pop(key, None) is not None and not is_done:
                with contextlib.suppress(OSError, ValueError):  # the child is gone: nothing to cancel
                    conn.send(("cancel", key))

    async def child_stats(self) -> tuple[DecodeStats, int]:
        """What the child has done (steps, tokens, the largest batch) and how many requests it
        holds (waiting or decoding)."""
        stats: tuple[DecodeStats, int] = await self._ask("stats", "stats")
        return stats

    @contextlib.contextmanager
    def hold(self, timeout_s: float = 10.0) -> Iterator[None]:
        """No decoding step runs in the child inside this block (requests still arrive and wait),
        as :meth:`DecodeScheduler.hold`: for tests, from a thread other than the event loop, after
        a request has started the child."""
        loop = self._started_loop()
        asyncio.run_coroutine_threadsafe(self._hold(True), loop).result(timeout_s)
        try:
            yield
        finally:
            asyncio.run_coroutine_threadsafe(self._hold(False), loop).result(timeout_s)

    async def _hold(self, is_held: bool) -> None:
        if is_held:
            await self._ask("hold", "held")  # the child has stopped stepping
        else:
            (await self._connection()).send(("release",))

    async def _ask(self, message: str, reply: str) -> Any:
        """Send the child ``message`` and wait for its next ``reply``."""
        conn = await self._connection()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[reply].append(waiter)
        conn.send((message,))
        return await waiter

    def _started_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise LockgateError("the decoding process has had no request yet")
        return self._loop

    def child_stats_from_thread(self, timeout_s: float = 10.0) -> tuple[DecodeStats, int]:
        """:meth:`child_stats` from a thread other than the event loop that reads the child (a
        test, a debugger); after a request has started the child."""
        return asyncio.run_coroutine_threadsafe(self.child_stats(), self._started_loop()).result(timeout_s)

    async def _connection(self) -> multiprocessing.connection.Connection:
        """The pipe to a live child, read by this event loop (a new child when the last one died)."""
        loop = asyncio.get_running_loop()
        async with self._starting:
            if self._conn is None or self._process is None or self._process.poll() is not None:
                await self.stop()
                await asyncio.to_thread(self.load)
        assert self._conn is not None
        if self._loop is not loop:
            self._stop_reading()
            loop.add_reader(self._conn.fileno(), self._on_readable)
            self._loop = loop
        return self._conn

    def _on_readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                kind, payload = conn.recv()
                waiters = self._waiters.get(kind)
                if waiters is not None:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(payload)
                    waiters.clear()
                    continue
                for key, chunk in payload:
                    queue = self._queues.get(key)
                    if queue is not None:
                        queue.put_nowait(chunk)
        except (EOFError, OSError):
            self._child_lost()

    def _child_lost(self) -> None:
        """The child died: every request in flight ends with an error; the next starts a new one."""
        code = self._process.poll() if self._process is not None else None  # never waits: event loop
        log.error("the decoding process exited (code %s); %d requests failed", code, len(self._queues))
        error = Chunk("", error=f"the decoding process exited (code {code}); the next request restarts it")
        for queue in self._queues.values():
            queue.put_nowait(error)
        self._queues.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(LockgateError("the decoding process exited"))
            waiters.clear()
        self._stop_reading()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def stop(self) -> None:
        """End the child (requests in flight get no more chunks)."""
        process, conn = self._process, self._conn
        self._stop_reading()
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("stop",))
        if process is not None and await asyncio.to_thread(_wait, process, _STOP_TIMEOUT_S) is None:
            process.kill()
            await asyncio.to_thread(_wait, process, 5)
        if conn is not None:
            conn.close()
        self._process, self._conn, self._loop = None, None, None
        self._queues.clear()

    def _stop_reading(self) -> None:
        if self._loop is not None and self._conn is not None:
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                self._loop.remove_reader(self._conn.fileno())
        self._loop = None


def _child_main(
    conn: multiprocessing.connection.Connection,
    path: Path,
    tokenizer_path: Path,
    max_batch_size: int,
    threads: int | None,
) -> None:
    """The decoding process: load the model, then take requests and run steps until told to stop
    (or until the parent's end of the pipe closes)."""
    try:
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        model = CausalModel(path, tokenizer_path=tokenizer_path)
        model.load()
    except Exception as exc:  # noqa: BLE001 (any failure to load: the parent says it, with this message)
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", ""))
    stepper = Stepper(model, max_batch_size=max_batch_size)
    requests: dict[int, Any] = {}
    held = [False]  # a test holds the steps (the parent's hold())
    try:
        while True:
            # wait for work when there is none (or steps are held); else take what arrived, no wait
            if not _take_messages(conn, stepper, requests, held, wait=held[0] or not stepper.active):
                return
            if held[0]:
                continue
            chunks = stepper.step()
            if not chunks:
                continue
            conn.send(("chunks", [(sequence.out, chunk) for sequence, chunk in chunks]))
            for sequence, chunk in chunks:
                if chunk.finish_reason is not None or chunk.error is not None:
                    requests.pop(sequence.out, None)
    except (EOFError, OSError, BrokenPipeError):
        return  # the parent is gone


def _take_messages(
    conn: multiprocessing.connection.Connection,
    stepper: Stepper,
    requests: dict[int, Any],
    held: list[bool],
    *,
    wait: bool,
) -> bool:
    """Apply the parent's messages; False when it said stop."""
    if wait:
        conn.poll(None)
    while conn.poll():
        message = conn.recv()
        kind = message[0]
        if kind == "add":
            _, key, sequence = message
            requests[key] = sequence
            stepper.waiting.append(sequence)
        elif kind == "cancel":
            sequence = requests.pop(message[1], None)
            if sequence is not None:
                sequence.is_abandoned = True
        elif kind == "stats":
            conn.send(("stats", (stepper.stats, stepper.active)))
        elif kind == "hold":
            held[0] = True
            conn.send(("held", None))
        elif kind == "release":
            held[0] = False
        elif kind == "stop":
            return False
    return True


def _wait(process: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """The exit code, or None when it still runs after ``timeout_s``."""
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return None


def _main(argv: list[str]) -> None:
    fd, path, tokenizer_path, max_batch_size, threads = argv
    conn = multiprocessing.connection.Connection(int(fd))
    _child_main(conn, Path(path), Path(tokenizer_path), int(max_batch_size), int(threads) or None)


if __name__ == "__main__":
    _main(sys.argv[1:])
