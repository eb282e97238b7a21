"""A lean HTTP/1.1 client for the calls a gateway makes to its upstreams.

It sends one request per connection at a time over kept-alive connections, and parses answers with
``httptools`` (llhttp, the parser uvicorn uses), directly on an asyncio protocol. It does no
redirects, cookies, proxies or HTTP/2. :mod:`lockgate.llm.upstream` needed no more than that,
and httpx's general client (h11's pure-Python state machine, its pool's locks and request models) was
about half of what a gateway added to a call (docs/llm.md, "Benchmark").

What it guarantees:
- **Addresses.** Each request goes to the address it is given (the one the caller checked); TLS
  uses the server name it is given, for SNI and for the certificate check.
- **Timeouts.** A connection not made within ``connect_timeout_s`` is :class:`ConnectTimedOut`.
  An answer that sends no bytes for ``read_timeout_s`` (before its head, or between two parts of
  its body) is :class:`ReadTimedOut`.
- **Failures.** A connection refused, reset or closed before a status line is :class:`ConnectFailed`.
  A kept-alive connection that the server had closed is retried once on a new connection, and only
  when none of the answer had arrived. A connection closed or garbled after the status line is
  :class:`BrokenResponse`.
- **Connection reuse.** A connection goes back to the pool only when its answer was read to the end
  and both sides keep it alive. An answer closed early (the client left) closes its connection.
- **Bounded.** At most ``max_connections`` requests are in flight; a request that waits longer than
  ``connect_timeout_s`` for a slot is :class:`ConnectTimedOut`. Reading from a connection pauses
  while more than 256 KiB of its body wait unread.
"""

from __future__ import annotations

import asyncio
import codecs
import ssl
from collections import deque
from collections.abc import AsyncIterator, Sequence

import httptools

__all__ = [
    "BrokenResponse",
    "ConnectFailed",
    "ConnectTimedOut",
    "Http1Error",
    "Http1Pool",
    "ReadTimedOut",
    "Response",
]

_HIGH_WATER = 256 * 1024  # unread body bytes at which a connection stops reading
_LOW_WATER = 64 * 1024


class Http1Error(Exception):
    """Anything that went wrong with an HTTP exchange (the message says what)."""


class ConnectFailed(Http1Error):
    """The connection could not be made, or closed before the answer's status line."""


class ConnectTimedOut(Http1Error):
    """No connection (or no free slot for one) within the connect timeout."""


class ReadTimedOut(Http1Error):
    """The answer sent nothing for the read timeout."""


class BrokenResponse(Http1Error):
    """The answer was cut off, or is not HTTP, after its status line had come."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the answer being read from it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.is_closed = False
        self.received_any = False  # a byte of the current answer has come

    # --------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes nobody asked for, on an idle connection: never reuse it
            self.close()
            return
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            response.fail(BrokenResponse(f"the answer is not valid HTTP/1.1: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_closed = True
        if self.response is not None:
            self.response.lost(exc)

    # --------------------------------------------------------------- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self.response is not None
        self.response.head_done(int(self.parser.get_status_code()))

    def on_body(self, body: bytes) -> None:
        assert self.response is not None
        self.response.body(body)

    def on_message_complete(self) -> None:
        assert self.response is not None
        self.response.complete(bool(self.parser.should_keep_alive()))

    # ---------------------------------------------------------------

    def start(self, request: bytes, response: Response) -> None:
        assert self.transport is not None
        self.parser = httptools.HttpResponseParser(self)
        self.response = response
        self.received_any = False
        self.transport.write(request)

    def close(self) -> None:
        self.is_closed = True
        if self.transport is not None:
            self.transport.close()

    def pause(self) -> None:
        if self.transport is not None and not self.is_closed:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.is_closed:
            self.transport.resume_reading()


class Response:
    """An answer being read: its status and headers once :meth:`Http1Pool.request` returns, its body
    as it is read (:meth:`read`, :meth:`iter_bytes`, :meth:`iter_lines`). Close it (:meth:`aclose`)
    when done with it, read or not: that frees its connection and its slot."""

    def __init__(self, pool: Http1Pool, connection: _Connection, address: str) -> None:
        self.status_code = 0
        self.headers: dict[str, str] = {}
        self._pool = pool
        self._connection = connection
        self._address = address
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._has_head = False
        self._is_done = False
        self._keep_alive = False
        self._error: Http1Error | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._released = False

    # --------------------------------------------------------------- fed by the connection

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def head_done(self, status: int) -> None:
        self.status_code = status
        self._has_head = True
        self._wake()

    def body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and not self._paused:
            self._paused = True
            self._connection.pause()
        self._wake()

    def complete(self, keep_alive: bool) -> None:
        self._is_done = True
        self._keep_alive = keep_alive
        self._wake()

    def fail(self, error: Http1Error) -> None:
        if self._error is None and not self._is_done:
            self._error = error
        self._wake()

    def lost(self, exc: Exception | None) -> None:
        if self._is_done:
            return
        why = f": {exc}" if exc is not None else ""
        if not self._has_head:
            self.fail(ConnectFailed(f"the server closed the connection before answering{why}"))
        elif self._is_close_delimited() and exc is None:
            self.complete(keep_alive=False)  # a body without a length ends when the connection does
        else:
            self.fail(BrokenResponse(f"the server closed the connection mid-answer{why}"))

    def _is_close_delimited(self) -> bool:
        return "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        )

    # --------------------------------------------------------------- read by the caller

    async def _wait(self) -> None:
        """Wait for the connection's next news (bytes, the end, a failure), at most the read timeout."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self._pool.read_timeout_s):
                await self._waiter
        except TimeoutError:
            raise ReadTimedOut(f"nothing came for {self._pool.read_timeout_s:g} s") from None
        finally:
            self._waiter = None

    async def head(self) -> None:
        """Wait for the status line and headers."""
        while not self._has_head:
            if self._error is not None:
                raise self._error
            await self._wait()

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """The body's parts as they arrive."""
        while True:
            if self._chunks:
                data = self._chunks.popleft()
                self._buffered -= len(data)
                if self._paused and self._buffered < _LOW_WATER:
                    self._paused = False
                    self._connection.resume()
                yield data
            elif self._is_done:
                return
            elif self._error is not None:
                raise self._error
            else:
                await self._wait()

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([data async for data in self.iter_bytes()])

    async def iter_lines(self) -> AsyncIterator[str]:
        """The body's lines (UTF-8, without their ``\\n`` or ``\\r\\n``) as they arrive."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""
        async for data in self.iter_bytes():
            lines = (pending + decoder.decode(data)).split("\n")
            pending = lines.pop()
            for line in lines:
                yield line[:-1] if line.endswith("\r") else line
        rest = pending + decoder.decode(b"", final=True)
        if rest:
            yield rest

    async def aclose(self) -> None:
        """Give the connection back (kept alive when the answer was read to its end), or close it."""
        if self._released:
            return
        self._released = True
        self._pool.release(self._connection, self._address, reuse=self._is_done and self._keep_alive)


class Http1Pool:
    """Kept-alive connections to one upstream's port, at whichever address each request gives."""

    def __init__(
        self,
        port: int,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        tls_name: str | None = None,
        max_connections: int = 256,
        max_idle: int = 64,
    ) -> None:
        self.port = port
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.tls_name = tls_name
        self._ssl = _tls_context() if tls_name is not None else None
        self._max_idle = max_idle
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[str, list[_Connection]] = {}
        self._open: set[_Connection] = set()

    async def request(
        self, address: str, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> Response:
        """Send the request to ``address`` and wait for the answer's head; its body is read from the
        :class:`Response`, which the caller closes."""
        head = [f"{method} {target} HTTP/1.1"]
        head += [f"{name}: {value}" for name, value in headers]
        head.append(f"content-length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        await self._take_slot()
        try:
            connection = self._reusable(address)
            if connection is not None:
                response = Response(self, connection, address)
                connection.start(request, response)
                try:
                    await response.head()
                    return response
                except ConnectFailed:
                    if connection.received_any:
                        raise
                    self._close(connection)  # the server had closed it while idle: again, on a new one
            connection = await self._connect(address)
            response = Response(self, connection, address)
            connection.start(request, response)
            await response.head()
            return response
        except BaseException:
            self._slots.release()
            raise

    def release(self, connection: _Connection, address: str, *, reuse: bool) -> None:
        self._slots.release()
        idle = self._idle.setdefault(address, [])
        if reuse and not connection.is_closed and len(idle) < self._max_idle:
            connection.response = None
            idle.append(connection)
        else:
            self._close(connection)

    async def aclose(self) -> None:
        """Close every connection, idle or in use (an answer still being read then fails)."""
        for connection in list(self._open):
            self._close(connection)
        self._idle.clear()
        await asyncio.sleep(0)  # the transports finish closing before the caller's loop may end

    def _close(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def _take_slot(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()
            return
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            raise ConnectTimedOut(
                f"every one of its connections stayed busy for {self.connect_timeout_s:g} s"
            ) from None

    def _reusable(self, address: str) -> _Connection | None:
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()
            if not connection.is_closed:
                return connection
            self._open.discard(connection)
        return None

    async def _connect(self, address: str) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, connection = await loop.create_connection(
                    _Connection,
                    host=address,
                    port=self.port,
                    ssl=self._ssl,
                    server_hostname=self.tls_name,
                )
        except TimeoutError:
            raise ConnectTimedOut(f"no connection within {self.connect_timeout_s:g} s") from None
        except ssl.SSLError as exc:
            raise ConnectFailed(f"TLS failed: {exc}") from None
        except OSError as exc:
            raise ConnectFailed(exc.strerror or str(exc) or type(exc).__name__) from None
        self._open.add(connection)
        return connection


def _tls_context() -> ssl.SSLContext:
    """The system's trust store, or certifi's where it is installed (as httpx and requests use)."""
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())
