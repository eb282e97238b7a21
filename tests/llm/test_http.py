"""The OpenAI-compatible endpoints on a real server (uvicorn on 127.0.0.1) serving the tiny model,
loaded the way ``lockgate serve FOLDER`` loads it."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from lockgate.llm.runtime import GenerativePredictor
from lockgate.serving.server import ServeConfig, ServerHandle, build_app, run_server_in_thread
from lockgate.serving.source import resolve_source
from tests.support import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[ServerHandle]:
    source = resolve_source(str(tiny_model), name="tiny")
    # decoding in a thread of the server, whose scheduler the tests hold and read directly (the
    # decoding process, the default, has the same tests through HTTP in test_engine.py)
    config = ServeConfig(str(tiny_model), decode_engine="thread")
    handle = run_server_in_thread(build_app(source, config=config))
    yield handle
    handle.stop()


def _predictor(server: ServerHandle) -> GenerativePredictor:
    predictor = server.app.variants["tiny"].predictor
    assert isinstance(predictor, GenerativePredictor)
    return predictor


def _post(server: ServerHandle, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=60)


def _events(response: httpx.Response) -> list[Any]:
    """The data of each server-sent event; ``[DONE]`` as the string."""
    events = []
    for block in response.text.split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            data = block[len("data: ") :]
            events.append(data if data == "[DONE]" else orjson.loads(data))
    return events


def test_a_completion_counts_its_tokens(server: ServerHandle) -> None:
    answer = _post(
        server, "/v1/completions", {"model": "tiny", "prompt": "lockgate", "max_tokens": 6, "temperature": 0}
    )
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["object"] == "text_completion"
    assert document["choices"][0]["finish_reason"] == "length"
    prompt_tokens = len(_predictor(server).encode("lockgate"))
    assert document["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 6,
        "total_tokens": prompt_tokens + 6,
    }
    assert answer.headers["x-model-name"] == "tiny"


def test_a_chat_answers_as_the_assistant(server: ServerHandle) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "What is a canary?"}], "max_tokens": 8}
    document = _post(server, "/v1/chat/completions", body).json()
    assert document["object"] == "chat.completion"
    assert document["choices"][0]["message"]["role"] == "assistant"
    assert isinstance(document["choices"][0]["message"]["content"], str)
    assert document["usage"]["completion_tokens"] <= 8


def test_a_stream_sends_the_same_text_as_the_answer(server: ServerHandle) -> None:
    body = {"model": "tiny", "prompt": "The server", "max_tokens": 10, "temperature": 0}
    whole = _post(server, "/v1/completions", body).json()["choices"][0]["text"]
    streamed = _post(
        server, "/v1/completions", {**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert streamed.headers["content-type"] == "text/event-stream"
    events = _events(streamed)
    assert events[-1] == "[DONE]"
    assert events[-2]["usage"]["completion_tokens"] == 10
    assert "".join(e["choices"][0]["text"] for e in events[:-2]) == whole
    assert events[-3]["choices"][0]["finish_reason"] == "length"


def test_a_chat_stream_starts_with_the_role(server: ServerHandle) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": True}
    events = _events(_post(server, "/v1/chat/completions", body))
    assert events[0]["object"] == "chat.completion.chunk"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"][0]["finish_reason"] in ("stop", "length")


def test_stop_and_seed(server: ServerHandle) -> None:
    body = {"model": "tiny", "prompt": "user: How", "max_tokens": 12, "temperature": 0.9, "seed": 3}
    first, second = (_post(server, "/v1/completions", body).json() for _ in range(2))
    assert first["choices"] == second["choices"]
    text = first["choices"][0]["text"]
    stop = text[3:5]
    stopped = _post(server, "/v1/completions", {**body, "stop": [stop]}).json()["choices"][0]
    assert stopped["text"] == text[: text.index(stop)]
    assert stopped["finish_reason"] == "stop"


def test_two_concurrent_requests_decode_in_one_batch(server: ServerHandle) -> None:
    """The model thread is held while both requests arrive, so the evidence does not depend on
    timing: once released, both are in the batch together."""
    scheduler = _predictor(server).scheduler
    body = {"model": "tiny", "prompt": "lockgate", "max_tokens": 8, "temperature": 0}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        with scheduler.hold():  # no decoding step runs until both have arrived
            futures = [pool.submit(_post, server, "/v1/completions", body) for _ in range(2)]
            while scheduler.active < 2:
                threading.Event().wait(0.01)
        answers = [future.result() for future in futures]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["choices"] == answers[1].json()["choices"]
    assert scheduler.stats.max_batch_size_seen >= 2


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/completions", {"model": "nope", "prompt": "x"}, 404, None),
        ("/v1/completions", {"prompt": "x"}, 422, "model"),
        ("/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": 0}, 422, "max_tokens"),
        ("/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": 100000}, 422, "max_tokens"),
        (
            "/v1/completions",
            {"model": "tiny", "prompt": "lockgate " * 20, "max_tokens": 120},
            400,
            "max_tokens",
        ),
        ("/v1/chat/completions", {"model": "tiny", "messages": "hi"}, 422, "messages"),
        ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "x"}]}, 422, "messages[0]"),
    ],
)
def test_bad_input_is_an_openai_style_4xx(
    server: ServerHandle, path: str, body: dict[str, Any], status: int, param: str | None
) -> None:
    answer = _post(server, path, body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == status
    assert error["param"] == param
    assert error["message"]


def test_malformed_json_is_a_400(server: ServerHandle) -> None:
    answer = httpx.post(
        server.url + "/v1/completions", content=b"{", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert "message" in answer.json()["error"]


def test_the_endpoints_are_in_the_openapi_document(server: ServerHandle) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert "post" in paths["/v1/completions"]
    assert "post" in paths["/v1/chat/completions"]


def test_a_client_that_goes_away_frees_its_slot(server: ServerHandle) -> None:
    """The model thread is held until the client has closed the stream: at the next step its
    sequence leaves the batch instead of decoding all of its tokens."""
    scheduler = _predictor(server).scheduler
    before = scheduler.stats.tokens
    body = {"model": "tiny", "prompt": "lockgate", "max_tokens": 100, "temperature": 0, "stream": True}
    with scheduler.hold():
        with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=60) as answer:
            assert answer.status_code == 200  # the status is sent before the first token
        threading.Event().wait(0.5)  # time for the server to read the close (a wait, not an assertion)
    wait_until(lambda: not scheduler.active, timeout_s=30, what="the slot freed", interval_s=0.05)
    assert scheduler.active == 0
    assert scheduler.stats.tokens - before < 100


def test_a_client_that_leaves_before_a_whole_answer_frees_its_slot(server: ServerHandle) -> None:
    """Not streamed: the server notices the client left while the answer was being made, and
    stops it, instead of decoding every token for nobody."""
    scheduler = _predictor(server).scheduler
    before = scheduler.stats.tokens
    body = {"model": "tiny", "prompt": "lockgate", "max_tokens": 100, "temperature": 0}
    with scheduler.hold():
        with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
            httpx.post(server.url + "/v1/completions", json=body, timeout=0.5)
        threading.Event().wait(0.5)  # time for the server to read the close (a wait, not an assertion)
    wait_until(lambda: not scheduler.active, timeout_s=30, what="the slot freed", interval_s=0.05)
    assert scheduler.active == 0
    assert scheduler.stats.tokens - before < 100


def test_the_protocol_generate_extension(server: ServerHandle) -> None:
    body = {"text_input": "The server", "parameters": {"max_tokens": 10, "temperature": 0}}
    whole = _post(server, "/v2/models/tiny/generate", body)
    assert whole.status_code == 200, whole.text
    document = whole.json()
    assert document["model_name"] == "tiny"
    assert document["details"]["finish_reason"] == "length"
    assert document["details"]["usage"]["completion_tokens"] == 10
    completion = _post(
        server,
        "/v1/completions",
        {"model": "tiny", "prompt": "The server", "max_tokens": 10, "temperature": 0},
    )
    assert document["text_output"] == completion.json()["choices"][0]["text"]
    events = _events(_post(server, "/v2/models/tiny/versions/1/generate_stream", body))
    assert "".join(e["text_output"] for e in events) == document["text_output"]
    assert events[-1]["details"]["finish_reason"] == "length"
    bad = _post(server, "/v2/models/tiny/generate", {"parameters": {}})
    assert bad.status_code == 422
    assert bad.json()["context"] == {"field": "text_input"}
