"""The upstream HTTP/1.1 client against real loopback servers that answer, or misbehave, as scripted."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lockgate.llm.http1 import BrokenResponse, ConnectFailed, ConnectTimedOut, Http1Pool, ReadTimedOut

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """One request (head and its content-length body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


def _run(handler: Handler, test: Callable[[int, dict[str, Any]], Awaitable[None]]) -> dict[str, Any]:
    """Serve ``handler`` on a loopback port (each connection gets its number) while ``test`` runs."""
    seen: dict[str, Any] = {"connections": 0, "requests": [], "closed": 0}

    async def main() -> None:
        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen["connections"] += 1
            try:
                await handler(reader, writer, seen["connections"])
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                seen["closed"] += 1
                writer.close()

        server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await test(port, seen)

    asyncio.run(main())
    return seen


def _pool(port: int, **options: Any) -> Http1Pool:
    return Http1Pool(port, **{"connect_timeout_s": 2.0, "read_timeout_s": 2.0, **options})


async def _answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: bytes) -> None:
    while True:
        await _read_request(reader)
        writer.write(answer)
        await writer.drain()


def test_a_kept_alive_connection_serves_the_next_request() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await _answer_each(reader, writer, OK)

    async def test(port: int, seen: dict[str, Any]) -> None:
        pool = _pool(port)
        for _ in range(3):
            response = await pool.request("127.0.0.1", "POST", "/v1/x", [("host", "h")], b"{}")
            assert (response.status_code, await response.read()) == (200, b"ok")
            await response.aclose()
        await pool.aclose()

    assert _run(handler, test)["connections"] == 1


def test_the_request_carries_its_head_and_body() -> None:
    requests: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        requests.append(await _read_request(reader))
        writer.write(OK)
        await writer.drain()

    async def test(port: int, seen: dict[str, Any]) -> None:
        pool = _pool(port)
        headers = [("host", "api.example.com"), ("authorization", "Bearer k")]
        response = await pool.request("127.0.0.1", "POST", "/v1/completions", headers, b'{"a":1}')
        await response.read()
        await response.aclose()

    _run(handler, test)
    head, body = requests[0].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/completions HTTP/1.1"
    assert {b"host: api.example.com", b"authorization: Bearer k", b"content-length: 7"} <= set(lines)
    assert body == b'{"a":1}'


def test_chunked_and_close_delimited_bodies_are_read_whole() -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    to_close = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await _read_request(reader)
        writer.write(chunked if number == 1 else to_close)
        await writer.drain()
        if number == 1:
            await _answer_each(reader, writer, OK)

    async def test(port: int, seen: dict[str, Any]) -> None:
        pool = _pool(port)
        response = await pool.request("127.0.0.1", "GET", "/", [], b"")
        assert await response.read() == b"abcde"
        await response.aclose()
        await pool.aclose()  # the next request needs a new connection
        response = await pool.request("127.0.0.1", "GET", "/", [], b"")
        assert await response.read() == b"until the end"
        await response.aclose()

    _run(handler, test)


def test_lines_are_split_across_parts_and_utf8_survives_a_split_character() -> None:
    text = "data: é1\r\n\ndata: 2\n".encode()
    parts = [text[:7], text[7:12], text[12:]]  # the first cut falls inside é

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for part in parts:
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def test(port: int, seen: dict[str, Any]) -> None:
        response = await _pool(port).request("127.0.0.1", "GET", "/", [], b"")
        assert [line async for line in response.iter_lines()] == ["data: é1", "", "data: 2"]
        await response.aclose()

    _run(handler, test)


def test_an_idle_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await _read_request(reader)
        writer.write(OK)  # says keep-alive, then closes
        await writer.drain()

    async def test(port: int, seen: dict[str, Any]) -> None:
        pool = _pool(port)
        for _ in range(3):
            response = await pool.request("127.0.0.1", "POST", "/", [], b"{}")
            assert await response.read() == b"ok"
            await response.aclose()

    assert _run(handler, test)["connections"] == 3


def test_a_refused_connection_is_a_connect_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused

        async def main() -> None:
            await _pool(port).request("127.0.0.1", "GET", "/", [], b"")

        with pytest.raises(ConnectFailed):
            asyncio.run(main())


def test_a_close_before_the_status_line_is_a_connect_failure_and_not_retried() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await _read_request(reader)

    async def test(port: int, seen: dict[str, Any]) -> None:
        with pytest.raises(ConnectFailed, match="before answering"):
            await _pool(port).request("127.0.0.1", "GET", "/", [], b"")

    assert _run(handler, test)["connections"] == 1


def test_a_close_mid_body_is_a_broken_response() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()

    async def test(port: int, seen: dict[str, Any]) -> None:
        response = await _pool(port).request("127.0.0.1", "GET", "/", [], b"")
        with pytest.raises(BrokenResponse, match="mid-answer"):
            await response.read()
        await response.aclose()

    _run(handler, test)


def test_garbage_instead_of_http_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await _read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async def test(port: int, seen: dict[str, Any]) -> None:
        with pytest.raises(BrokenResponse, match="not valid HTTP"):
            await _pool(port).request("127.0.0.1", "GET", "/", [], b"")

    _run(handler, test)


def test_silence_before_the_head_and_between_parts_is_a_read_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await _read_request(reader)
        if number == 2:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n")
            await writer.drain()
        await asyncio.sleep(2)

    async def test(port: int, seen: dict[str, Any]) -> None:
        pool = _pool(port, read_timeout_s=0.2)
        with pytest.raises(ReadTimedOut):
            await pool.request("127.0.0.1", "GET", "/", [], b"")
        response = await pool.request("127.0.0.1", "GET", "/", [], b"")
        parts = response.iter_bytes()
        assert await anext(parts) == b"ab"
        with pytest.raises(ReadTimedOut):
            await anext(parts)
        await response.aclose()

    _run(handler, test)


def test_an_answer_closed_early_closes_its_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n")
        await writer.drain()
        await reader.read()  # until the client closes

    async def test(port: int, seen: dict[str, Any]) -> None:
        pool = _pool(port)
        response = await pool.request("127.0.0.1", "GET", "/", [], b"")
        await response.aclose()
        for _ in range(100):
            if seen["closed"]:
                break
            await asyncio.sleep(0.01)
        assert seen["closed"] == 1

    _run(handler, test)


def test_a_request_that_finds_every_slot_busy_times_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await _answer_each(reader, writer, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    async def test(port: int, seen: dict[str, Any]) -> None:
        pool = _pool(port, max_connections=1, connect_timeout_s=0.2)
        held = await pool.request("127.0.0.1", "GET", "/", [], b"")
        with pytest.raises(ConnectTimedOut, match="busy"):
            await pool.request("127.0.0.1", "GET", "/", [], b"")
        await held.read()
        await held.aclose()
        again = await pool.request("127.0.0.1", "GET", "/", [], b"")  # the slot is free again
        assert await again.read() == b"ok"
        await again.aclose()

    _run(handler, test)
