"""Upstream variants end to end: a lockgate gateway whose deployment's variants are
``upstream:NAME``, in front of a second real lockgate server serving the tiny model; and, for what
lockgate cannot be made to do (answer 5xx or HTML, stall, cut a stream, redirect), a small real
HTTP server on loopback written below."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from lockgate.errors import UserError
from lockgate.llm.upstream import UpstreamPredictor
from lockgate.rollout.spec import DeploymentSpec, UpstreamEndpoint, parse_spec
from lockgate.serving.server import ServeConfig, ServerHandle, build_app, run_server_in_thread
from tests.support import AUTH, TOKEN, ServerProcess, free_port, start_server

pytestmark = pytest.mark.integration


# -- a real upstream that misbehaves on purpose --------------------------------------------------
def _sse(document: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(document) + b"\n\n"


def _chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": text} if text else {}
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


_ANSWER = {
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class Misbehaving:
    """An HTTP/1.1 server on 127.0.0.1 whose first path segment says how to answer:
    ``/ok``, ``/e500``, ``/html``, ``/error200``, ``/slow``, ``/cut``, ``/stall``, ``/drip``,
    ``/redirect``, ``/flaky`` (two 503s, then an answer), ``/target`` (counts its hits)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hits: dict[str, int] = {}
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.drip_closed = threading.Event()
        self.drip_sent = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._started.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._started.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def shut() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {
                k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = orjson.loads(await reader.readexactly(int(headers.get("content-length", "0"))) or b"{}")
            self.headers.append(headers)
            self.bodies.append(body)
            mode = path.strip("/").split("/")[0]
            self.hits[mode] = self.hits.get(mode, 0) + 1
            await getattr(self, f"_{mode}")(writer, body)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _reply(
        writer: asyncio.StreamWriter, status: str, body: bytes, kind: str = "application/json"
    ) -> None:
        head = (
            f"HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()

    @staticmethod
    async def _start_stream(writer: asyncio.StreamWriter) -> None:
        head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        writer.write(head.encode())
        await writer.drain()

    @staticmethod
    async def _send_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()

    async def _ok(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        if not body.get("stream"):
            await self._reply(writer, "200 OK", orjson.dumps(_ANSWER))
            return
        await self._start_stream(writer)
        for event in (_chunk("fi"), _chunk("ne"), _chunk("", "stop")):
            await self._send_chunk(writer, _sse(event))
        usage = {"choices": [], "usage": _ANSWER["usage"]}
        await self._send_chunk(writer, _sse(usage) + b"data: [DONE]\n\n")
        await self._send_chunk(writer, b"")

    async def _flaky(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        if self.hits["flaky"] <= 2:
            await self._reply(writer, "503 Service Unavailable", b'{"error": {"message": "warming up"}}')
        else:
            await self._ok(writer, body)

    async def _e500(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        error = {"error": {"message": "CUDA out of memory", "type": "server_error"}}
        await self._reply(writer, "500 Internal Server Error", orjson.dumps(error))

    async def _html(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        await self._reply(writer, "200 OK", b"<html>login page</html>", "text/html")

    async def _error200(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        await self._reply(writer, "200 OK", b'{"error": {"message": "model is overloaded"}}')

    async def _slow(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        await asyncio.sleep(30)

    async def _cut(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        await self._start_stream(writer)
        for event in (_chunk("half an"), _chunk(" ans")):
            await self._send_chunk(writer, _sse(event))
        # the connection closes here, mid-answer, with no finish and no last chunk

    async def _stall(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        await self._start_stream(writer)
        await self._send_chunk(writer, _sse(_chunk("and then")))
        await asyncio.sleep(30)

    async def _drip(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        await self._start_stream(writer)
        try:
            for _ in range(400):
                await self._send_chunk(writer, _sse(_chunk("word ")))
                self.drip_sent += 1
                await asyncio.sleep(0.025)
        except ConnectionError:
            self.drip_closed.set()
            raise

    async def _redirect(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        head = (
            f"HTTP/1.1 307 Temporary Redirect\r\nlocation: {self.url}/target/v1/chat/completions\r\n"
            "content-length: 0\r\nconnection: close\r\n\r\n"
        )
        writer.write(head.encode())
        await writer.drain()

    async def _target(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        await self._ok(writer, body)


# -- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def upstream(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The second lockgate: the tiny model, served the way ``lockgate serve FOLDER`` serves it."""
    log = tmp_path_factory.mktemp("upstream") / "server.log"
    with start_server([str(tiny_model), "--name", "tiny"], log_to=log) as server:
        yield server


@pytest.fixture(scope="module")
def misbehaving() -> Iterator[Misbehaving]:
    server = Misbehaving()
    yield server
    server.close()


_MODES = ("ok", "e500", "html", "error200", "slow", "cut", "stall", "drip", "redirect", "flaky")


def _spec(name: str, endpoints: dict[str, dict[str, Any]], allowed: list[str]) -> dict[str, Any]:
    first, second = [*endpoints, *endpoints][:2]
    return {
        "name": name,
        "variants": {"stable": f"upstream:{first}", "next": f"upstream:{second}"},
        "baseline": "stable",
        "candidate": "next",
        "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 1_000_000}]},
        "upstreams": {"allowed_hosts": allowed, "endpoints": endpoints},
    }


@pytest.fixture(scope="module")
def gateway(
    upstream: ServerProcess, misbehaving: Misbehaving, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    """A gateway in this process (its counters are read directly): deployment ``lm`` forwards to
    the lockgate upstream, ``m-MODE`` to the misbehaving server answering that way."""
    allowed = [f"127.0.0.1:{upstream.port}", f"127.0.0.1:{misbehaving.port}"]
    lm = {"tiny": {"url": f"{upstream.url}/v1", "model": "tiny"}}
    specs = [parse_spec(_spec("lm", lm, allowed))]
    for mode in _MODES:
        # a short timeout only where the timeout is what is tested: a loaded machine is slow
        timeout_s = 0.5 if mode in ("slow", "stall") else 30
        endpoint = {"url": f"{misbehaving.url}/{mode}/v1", "model": "m", "timeout_s": timeout_s, "retries": 2}
        specs.append(parse_spec(_spec(f"m-{mode}", {mode: endpoint}, allowed)))
    dead = {"url": f"http://127.0.0.1:{free_port()}/v1", "model": "m", "connect_timeout_s": 0.5}
    specs.append(parse_spec(_spec("m-dead", {"dead": dead}, [*allowed, dead["url"][7:-3]])))
    store = tmp_path_factory.mktemp("gateway") / "rollouts.db"
    config = ServeConfig(
        "", deployments=tuple(specs), store_url=f"sqlite:///{store}", admin_token=TOKEN, tick_s=0.05
    )
    handle = run_server_in_thread(build_app(config=config))
    yield handle
    handle.stop()


def _chat(url: str, model: str, **fields: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "What is a canary?"}], **fields}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=60)


def _events(response: httpx.Response) -> list[Any]:
    blocks = [b for b in response.text.split("\n\n") if b]
    assert all(b.startswith("data: ") for b in blocks), response.text
    return [b[6:] if b[6:] == "[DONE]" else orjson.loads(b[6:]) for b in blocks]


def _variant(gateway: ServerHandle, name: str) -> Any:
    deployments = gateway.app.deployments
    assert deployments is not None
    return deployments.live[name].variants["stable"]


def _errors(gateway: ServerHandle, name: str) -> tuple[int, int]:
    stats = _variant(gateway, name).snapshot()
    return stats.requests, stats.errors


def _errors_after(gateway: ServerHandle, name: str, before: tuple[int, int]) -> tuple[int, int]:
    """The counts once this request is in them: a request is counted after its reply is sent, so
    the client can see the answer first (on a loaded machine, by milliseconds)."""
    deadline = time.monotonic() + 10
    counts = _errors(gateway, name)
    while counts[0] == before[0] and time.monotonic() < deadline:
        time.sleep(0.02)
        counts = _errors(gateway, name)
    return counts


# -- forwarding --------------------------------------------------------------------------------------
def test_a_chat_through_the_gateway_is_the_upstreams_answer(
    upstream: ServerProcess, gateway: ServerHandle
) -> None:
    fields = {"max_tokens": 6, "temperature": 0, "seed": 1}
    direct = _chat(upstream.url, "tiny", **fields)
    forwarded = _chat(gateway.url, "lm", **fields)
    assert forwarded.status_code == 200, forwarded.text
    assert forwarded.headers["x-lockgate-variant"] == "stable"
    assert forwarded.headers["x-model-name"] == "tiny"
    assert forwarded.json()["model"] == "lm"
    for key in ("choices", "usage"):
        assert forwarded.json()[key] == direct.json()[key]


def test_a_completion_stream_is_forwarded_chunk_by_chunk_with_the_usage(
    upstream: ServerProcess, gateway: ServerHandle
) -> None:
    body = {"prompt": "The server", "max_tokens": 8, "temperature": 0}
    whole = httpx.post(upstream.url + "/v1/completions", json={"model": "tiny", **body}, timeout=60).json()
    streamed = httpx.post(
        gateway.url + "/v1/completions",
        json={"model": "lm", **body, "stream": True, "stream_options": {"include_usage": True}},
        timeout=60,
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = _events(streamed)
    assert events[-1] == "[DONE]"
    texts = [e["choices"][0]["text"] for e in events[:-1] if e["choices"]]
    assert len(texts) > 1  # forwarded as it came, not gathered into one
    assert "".join(texts) == whole["choices"][0]["text"]
    assert events[-2]["usage"] == whole["usage"]


def test_a_chat_stream_starts_with_the_role_and_ends_with_the_finish(gateway: ServerHandle) -> None:
    events = _events(_chat(gateway.url, "lm", stream=True, max_tokens=5))
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert events[-1] == "[DONE]"


def test_the_protocol_generate_extension_is_forwarded(gateway: ServerHandle) -> None:
    body = {"text_input": "The server", "parameters": {"max_tokens": 4, "temperature": 0}}
    answer = httpx.post(gateway.url + "/v2/models/lm/generate", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["model_name"] == "tiny" and document["model_version"] == "upstream:tiny"
    assert document["details"]["usage"]["completion_tokens"] <= 4
    streamed = httpx.post(gateway.url + "/v2/models/lm/generate_stream", json=body, timeout=60)
    events = _events(streamed)
    assert "".join(e["text_output"] for e in events) == document["text_output"]


def test_the_upstream_gets_its_own_model_name_and_the_clients_other_fields(
    misbehaving: Misbehaving, gateway: ServerHandle
) -> None:
    answer = _chat(gateway.url, "m-ok", max_tokens=3, presence_penalty=0.5, user="u1")
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "fine"
    sent = misbehaving.bodies[-1]
    assert sent["model"] == "m" and sent["presence_penalty"] == 0.5 and sent["user"] == "u1"
    assert sent["stream"] is False
    assert misbehaving.headers[-1]["host"] == f"127.0.0.1:{misbehaving.port}"
    events = _events(_chat(gateway.url, "m-ok", stream=True, stream_options={"include_usage": True}))
    assert (
        "".join(e["choices"][0]["delta"].get("content", "") for e in events[1:-1] if e["choices"]) == "fine"
    )
    assert events[-2]["usage"] == _ANSWER["usage"]


# -- bad upstreams: a clear 502/504 naming it, counted as the variant's error -------------------------
@pytest.mark.parametrize(
    ("mode", "status", "words"),
    [
        ("e500", 502, "answered 500: CUDA out of memory"),
        ("html", 502, "answered something that is not JSON: '<html>login page</html>'"),
        ("error200", 502, "answered an error: model is overloaded"),
        ("slow", 504, "sent no answer within 0.5 s"),
        ("redirect", 502, "a redirect to"),
        ("dead", 502, "could not be reached"),
    ],
)
def test_a_failing_upstream_is_a_502_or_504_naming_it(
    gateway: ServerHandle, mode: str, status: int, words: str
) -> None:
    before = _errors(gateway, f"m-{mode}")
    answer = _chat(gateway.url, f"m-{mode}")
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert f"upstream '{mode}'" in error["message"] and words in error["message"]
    assert error["code"] == status
    after = _errors_after(gateway, f"m-{mode}", before)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_a_redirect_is_not_followed(misbehaving: Misbehaving, gateway: ServerHandle) -> None:
    assert _chat(gateway.url, "m-redirect").status_code == 502
    assert misbehaving.hits.get("target", 0) == 0


def test_a_stream_cut_mid_answer_ends_with_an_error_event_and_counts(gateway: ServerHandle) -> None:
    before = _errors(gateway, "m-cut")
    started = time.monotonic()
    answer = _chat(gateway.url, "m-cut", stream=True)
    assert answer.status_code == 200  # the status went before the cut
    events = _events(answer)
    texts = [e["choices"][0]["delta"].get("content") for e in events[:-1] if "choices" in e]
    assert "half an" in texts
    assert "stopped mid-answer" in events[-1]["error"]["message"]
    assert events[-1]["error"]["code"] == 502
    assert time.monotonic() - started < 10
    after = _errors_after(gateway, "m-cut", before)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_a_stream_that_stalls_ends_with_a_timeout_event(gateway: ServerHandle) -> None:
    before = _errors(gateway, "m-stall")
    answer = _chat(gateway.url, "m-stall", stream=True)
    events = _events(answer)
    assert events[-1]["error"]["code"] == 504
    assert "sent no next part of its answer within 0.5 s" in events[-1]["error"]["message"]
    assert _errors_after(gateway, "m-stall", before)[1] == before[1] + 1


def test_a_503_before_any_answer_is_retried(misbehaving: Misbehaving, gateway: ServerHandle) -> None:
    answer = _chat(gateway.url, "m-flaky")
    assert answer.status_code == 200, answer.text
    assert misbehaving.hits["flaky"] == 3


def test_retries_against_a_dead_upstream_stay_within_the_budget(gateway: ServerHandle) -> None:
    predictor = _variant(gateway, "m-dead").predictor
    assert isinstance(predictor, UpstreamPredictor)
    attempts_before = predictor.attempts
    for _ in range(40):
        assert _chat(gateway.url, "m-dead").status_code == 502
    # 2 retries each would be 120 calls; the budget allows its reserve (10) and a tenth of requests
    assert predictor.attempts - attempts_before <= 40 + 10 + 4 + 1


def test_a_client_that_leaves_mid_stream_closes_the_upstream_request(
    misbehaving: Misbehaving, gateway: ServerHandle
) -> None:
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": "m-drip", "messages": [{"role": "user", "content": "go"}], "stream": True},
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if "word" in line:
                break
    assert misbehaving.drip_closed.wait(10), "the upstream's request stayed open"
    assert misbehaving.drip_sent < 400


# -- refusals at deploy time -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "allowed", "words"),
    [
        ("http://127.0.0.1:9/v1", ["api.example.com"], "not in upstreams.allowed_hosts"),
        ("http://169.254.169.254/latest", ["169.254.0.0/16"], "cloud metadata address"),
        ("http://[fe80::1]:8000/v1", ["api.example.com", "[fe80::1]"], None),
        ("http://api.example.com@127.0.0.1:9/v1", ["api.example.com", "127.0.0.1"], "user information"),
        ("gopher://127.0.0.1:9/", ["127.0.0.1"], "http:// or https://"),
    ],
)
def test_a_spec_that_points_where_it_may_not_is_refused_at_deploy(
    gateway: ServerHandle, url: str, allowed: list[str], words: str | None
) -> None:
    name = f"attack-{abs(hash(url)) % 10**6}"
    spec = _spec(name, {"evil": {"url": url, "model": "m"}}, allowed)
    answer = httpx.put(f"{gateway.url}/admin/deployments/{name}", json=spec, headers=AUTH, timeout=30)
    if words is None:  # the address is listed: allowed (nothing listens there, but that is later)
        assert answer.status_code == 201, answer.text
        return
    assert 400 <= answer.status_code < 500, answer.text
    assert words in answer.json()["detail"]


def test_a_listed_name_that_resolves_to_loopback_is_refused() -> None:
    endpoint = UpstreamEndpoint("http://localhost:9/v1", "m")
    predictor = UpstreamPredictor("local", endpoint, ["localhost:9"])
    with pytest.raises(UserError, match=r"'localhost' resolves to (127\.0\.0\.1|::1), a loopback address"):
        predictor.load()


def test_the_api_key_comes_from_the_variable_the_spec_names(misbehaving: Misbehaving) -> None:
    endpoint = UpstreamEndpoint(f"{misbehaving.url}/ok/v1", "m", api_key_env="LOCKGATE_TEST_LLM_KEY")
    allowed = [f"127.0.0.1:{misbehaving.port}"]
    with pytest.raises(UserError, match=r"LOCKGATE_TEST_LLM_KEY .* is not set") as caught:
        UpstreamPredictor("keyed", endpoint, allowed, environ={})
    assert "set LOCKGATE_TEST_LLM_KEY" in str(caught.value.hint)
    predictor = UpstreamPredictor("keyed", endpoint, allowed, environ={"LOCKGATE_TEST_LLM_KEY": "sk-secret"})
    assert "sk-secret" not in repr(predictor)
    from lockgate.llm.params import ChatMessage, SamplingParams

    async def ask() -> str:
        chunks = await predictor.complete((ChatMessage("user", "hi"),), SamplingParams(), {}, is_stream=False)
        text = "".join([chunk.text async for chunk in chunks])
        await predictor.stop()
        return text

    assert asyncio.run(ask()) == "fine"
    assert misbehaving.headers[-1]["authorization"] == "Bearer sk-secret"


# -- lockgate serve --deployment -----------------------------------------------------------------------
def test_lockgate_serve_serves_a_spec_of_upstream_variants(upstream: ServerProcess, tmp_path: Path) -> None:
    spec = _spec(
        "support", {"tiny": {"url": f"{upstream.url}/v1", "model": "tiny"}}, [f"127.0.0.1:{upstream.port}"]
    )
    path = tmp_path / "support.yaml"
    path.write_text(yaml.safe_dump(spec))
    store = f"sqlite:///{tmp_path / 'rollouts.db'}"
    with start_server(["--deployment", str(path), "--store", store], home=tmp_path) as gateway:
        answer = _chat(gateway.url, "support", max_tokens=4)
        assert answer.status_code == 200, answer.text
        assert answer.json()["usage"]["completion_tokens"] <= 4
        status = httpx.get(gateway.url + "/admin/deployments/support", headers=AUTH, timeout=30).json()
        assert status["variants"]["stable"]["model_uri"] == "upstream:tiny"


def test_a_spec_with_upstreams_reads_back_equal() -> None:
    spec = parse_spec(
        _spec("rt", {"a": {"url": "https://api.example.com/v1", "model": "m"}}, ["api.example.com"])
    )
    assert isinstance(spec, DeploymentSpec)
    assert parse_spec(spec.to_dict()) == spec


def test_the_gateway_overhead_is_measured_against_the_upstream(
    upstream: ServerProcess, gateway: ServerHandle
) -> None:
    from lockgate.llm.overhead import measure_gateway_overhead

    result = measure_gateway_overhead(upstream.url, "tiny", gateway.url, "lm", requests=6, warmup=2)
    assert result.pairs == 6
    assert 0 < result.direct_p50_ms < 10_000 and 0 < result.gateway_p50_ms < 10_000
    assert result.overhead_ms_p50 == pytest.approx(result.gateway_p50_ms - result.direct_p50_ms)


def test_an_upstreams_answers_and_failures_count_in_its_llm_metrics(
    misbehaving: Misbehaving, gateway: ServerHandle
) -> None:
    """Time to first token and tokens from the upstream's usage; a 504 is a timeout, a 502 an error;
    lockgate's own ``variables`` field is rendered here, never forwarded."""
    assert _chat(gateway.url, "m-ok", max_tokens=3, variables={"tone": "calm"}).status_code == 200
    assert "variables" not in misbehaving.bodies[-1]
    assert _chat(gateway.url, "m-slow").status_code == 504
    assert _chat(gateway.url, "m-e500").status_code == 502
    ok, slow, failed = (_variant(gateway, f"m-{mode}").generation for mode in ("ok", "slow", "e500"))
    assert ok is not None and ok.ttft.count >= 1 and ok.errors == 0
    assert ok.prompt_tokens >= _ANSWER["usage"]["prompt_tokens"]
    assert slow is not None and slow.timeouts >= 1 and slow.errors == slow.timeouts
    assert failed is not None and failed.errors >= 1 and failed.timeouts == 0
