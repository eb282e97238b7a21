"""The ``openai`` Python package, unchanged, against lockgate's endpoints: a served model, and an
upstream variant of a deployment in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from lockgate.rollout.spec import parse_spec
from lockgate.serving.server import ServeConfig, ServerHandle, build_app, run_server_in_thread
from lockgate.serving.source import resolve_source

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[ServerHandle]:
    source = resolve_source(str(tiny_model), name="tiny")
    handle = run_server_in_thread(build_app(source, config=ServeConfig(str(tiny_model))))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def gateway(server: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    spec = parse_spec(
        {
            "name": "support",
            "variants": {"stable": "upstream:tiny", "next": "upstream:tiny"},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {"type": "canary", "steps": [{"weight_percent": 50}]},
            "upstreams": {
                "allowed_hosts": [f"127.0.0.1:{server.port}"],
                "endpoints": {"tiny": {"url": f"{server.url}/v1", "model": "tiny"}},
            },
        }
    )
    store = tmp_path_factory.mktemp("openai-gateway") / "rollouts.db"
    config = ServeConfig("", deployments=(spec,), store_url=f"sqlite:///{store}")
    handle = run_server_in_thread(build_app(config=config))
    yield handle
    handle.stop()


def _client(handle: ServerHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{handle.url}/v1", api_key="not-needed", max_retries=0, timeout=60)


def test_a_chat_completion(server: ServerHandle) -> None:
    answer = _client(server).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "What is a canary?"}], max_tokens=6, temperature=0
    )
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.role == "assistant"
    assert isinstance(answer.choices[0].message.content, str)
    assert answer.usage is not None and answer.usage.completion_tokens <= 6


def test_a_completion(server: ServerHandle) -> None:
    answer = _client(server).completions.create(
        model="tiny", prompt="The server", max_tokens=5, temperature=0
    )
    assert answer.object == "text_completion"
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage is not None and answer.usage.completion_tokens <= 5


@pytest.mark.parametrize("where", ["server", "gateway"])
def test_a_streamed_chat_gives_the_same_text_as_the_whole_answer(
    server: ServerHandle, gateway: ServerHandle, where: str
) -> None:
    handle, model = (server, "tiny") if where == "server" else (gateway, "support")
    client = _client(handle)
    messages = [{"role": "user", "content": "Roll it back"}]
    whole = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0)
    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_an_unknown_model_raises_with_lockgates_message(server: ServerHandle) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        _client(server).chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert "nope" in caught.value.message


def test_a_bad_field_raises_a_4xx_naming_it(server: ServerHandle) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        _client(server).completions.create(model="tiny", prompt="x", max_tokens=10**9)
    assert "max_tokens" in caught.value.message
