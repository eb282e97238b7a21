"""Text generation over HTTP: OpenAI's ``POST /v1/completions`` and ``/v1/chat/completions``,
and the Open Inference Protocol's ``POST /v2/models/{name}/generate`` and ``.../generate_stream``.

The body's ``model`` is routed like any inference request (a deployment's choice, or the model
of that name); the model must be generative (:class:`~lockgate.llm.runtime.GenerativePredictor`).
The fields are checked once (:mod:`lockgate.llm.params`), the prompt's tokens counted, and the
request joins the model's running batch. With ``stream: true`` the answer is server-sent events:
one ``data: {...}`` chunk per piece of text, then ``data: [DONE]``; ``stream_options:
{"include_usage": true}`` adds a last chunk with the usage. Errors are OpenAI's shape,
``{"error": {"message", "type", "code"}}``, with the status of lockgate's error class.

The protocol's generate extension takes ``{"text_input": ..., "parameters": {...}}`` (the same
sampling fields) and answers ``{"model_name", "model_version", "text_output", "details"}``;
``generate_stream`` sends one such event per piece of text.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from lockgate.errors import UserError, ValidationError
from lockgate.llm.params import parse_messages, parse_prompt, parse_sampling
from lockgate.serving.exchange import Exchange, Response
from lockgate.serving.inference import choose_variant
from lockgate.serving.payload import parse_json
from lockgate.serving.traced import traced

if TYPE_CHECKING:
    from lockgate.llm.decoding import Chunk
    from lockgate.llm.params import ChatMessage, SamplingParams
    from lockgate.llm.runtime import GenerativePredictor
    from lockgate.serving.app import ServingApp

__all__ = ["chat_completions", "completions", "generate", "generate_stream", "sse_event"]

_EVENT_STREAM = b"text/event-stream"
_DONE = b"data: [DONE]\n\n"


def sse_event(document: Mapping[str, Any]) -> bytes:
    """One server-sent event carrying ``document`` as JSON."""
    return b"data: " + orjson.dumps(document) + b"\n\n"


def _body(exchange: Exchange) -> dict[str, Any]:
    """The JSON object the route table's dispatch read (and checked the media type of)."""
    body = parse_json(exchange.body)
    if not isinstance(body, dict):
        raise ValidationError(
            "the body must be a JSON object", hint='e.g. {"model": "NAME", "prompt": "Hello"}'
        )
    return body


def _generative(app: ServingApp, exchange: Exchange, body: Mapping[str, Any]) -> GenerativePredictor:
    """The generative model the body's ``model`` names, routed (and noted on the exchange)."""
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ValidationError(
            "'model' must name the model to use",
            hint=f"models served: {sorted(app.variants) or 'none yet'}",
            detail={"field": "model"},
        )
    return _generative_named(app, exchange, name)


def _generative_named(app: ServingApp, exchange: Exchange, name: str) -> GenerativePredictor:
    variant, exchange.deployment, exchange.shadow, exchange.unit = choose_variant(
        app, name, exchange.scope, exchange.routing_key
    )
    exchange.variant, exchange.name = variant, name
    predictor = variant.predictor
    if not getattr(predictor, "is_generative", False):
        raise UserError(
            f"model '{name}' does not generate text (its runtime is {predictor.runtime})",
            hint="use POST /v2/models/{name}/infer or /invocations for it",
            detail={"field": "model"},
        )
    return predictor  # type: ignore[return-value]


async def _answer(
    predictor: GenerativePredictor,
    request: str | tuple[ChatMessage, ...],
    params: SamplingParams,
    body: Mapping[str, Any],
    *,
    is_stream: bool,
) -> AsyncIterator[Chunk]:
    """The answer's chunks: a local model joins the running batch; an upstream endpoint (one with
    ``complete``, :class:`~lockgate.llm.upstream.UpstreamPredictor`) is called now, so that its
    failure is this request's 502/504 before any answer starts."""
    complete = getattr(predictor, "complete", None)
    if complete is not None:
        chunks: AsyncIterator[Chunk] = await complete(request, params, body, is_stream=is_stream)
        return chunks
    prompt = request if isinstance(request, str) else predictor.chat_prompt(request)
    prompt_ids = predictor.encode(prompt)
    predictor.scheduler.check_fits(len(prompt_ids), params.max_tokens)
    return predictor.generate(prompt_ids, params)


def _as_text(messages: tuple[ChatMessage, ...]) -> str:
    """A conversation as one text, for its trace."""
    return "\n".join(f"{m.role}: {m.content}" for m in messages)


async def _collect(chunks: AsyncIterator[Chunk]) -> tuple[str, Chunk]:
    parts, last = [], None
    async for chunk in chunks:
        parts.append(chunk.text)
        last = chunk
    assert last is not None and last.usage is not None
    return "".join(parts), last


async def completions(app: ServingApp, exchange: Exchange) -> Response:
    """``POST /v1/completions``: continue a prompt."""
    body = _body(exchange)
    predictor = _generative(app, exchange, body)
    params = parse_sampling(body, max_context=predictor.context)
    prompt = parse_prompt(body)
    chunks = traced(
        app,
        exchange,
        prompt,
        await _answer(predictor, prompt, params, body, is_stream=body.get("stream") is True),
    )
    head = {
        "id": "cmpl-" + exchange.request_id.decode("latin-1"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": body["model"],
    }
    if body.get("stream") is True:

        def choice(chunk: Chunk) -> dict[str, Any]:
            return {"text": chunk.text, "index": 0, "logprobs": None, "finish_reason": chunk.finish_reason}

        return Response(
            200, b"", _EVENT_STREAM, stream=_stream(head, chunks, choice, None, _wants_usage(body))
        )
    text, last = await _collect(chunks)
    assert last.usage is not None
    document = {
        **head,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": last.finish_reason}],
        "usage": last.usage.to_dict(),
    }
    return Response(200, orjson.dumps(document))


async def chat_completions(app: ServingApp, exchange: Exchange) -> Response:
    """``POST /v1/chat/completions``: answer a conversation."""
    body = _body(exchange)
    predictor = _generative(app, exchange, body)
    messages = parse_messages(body)
    params = parse_sampling(body, max_context=predictor.context)
    chunks = traced(
        app,
        exchange,
        _as_text(messages),
        await _answer(predictor, messages, params, body, is_stream=body.get("stream") is True),
    )
    head = {
        "id": "chatcmpl-" + exchange.request_id.decode("latin-1"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
    }
    if body.get("stream") is True:

        def choice(chunk: Chunk) -> dict[str, Any]:
            delta = {"content": chunk.text} if chunk.text or chunk.finish_reason is None else {}
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": chunk.finish_reason}

        first = {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
        stream_head = {**head, "object": "chat.completion.chunk"}
        return Response(
            200, b"", _EVENT_STREAM, stream=_stream(stream_head, chunks, choice, first, _wants_usage(body))
        )
    text, last = await _collect(chunks)
    assert last.usage is not None
    message = {"role": "assistant", "content": text}
    document = {
        **head,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": last.finish_reason}],
        "usage": last.usage.to_dict(),
    }
    return Response(200, orjson.dumps(document))


def _wants_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def _stream(
    head: dict[str, Any],
    chunks: AsyncIterator[Chunk],
    choice: Any,
    first: dict[str, Any] | None,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """The server-sent events of a streamed answer; closing it stops the generation."""
    if first is not None:
        yield sse_event({**head, "choices": [first]})
    usage = None
    try:
        async for chunk in chunks:
            if chunk.text or chunk.finish_reason is not None:
                yield sse_event({**head, "choices": [choice(chunk)]})
            usage = chunk.usage
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    if include_usage and usage is not None:
        yield sse_event({**head, "choices": [], "usage": usage.to_dict()})
    yield _DONE


async def generate(app: ServingApp, exchange: Exchange) -> Response:
    """``POST /v2/models/{name}/generate``: the protocol's generate extension, one answer."""
    return await _generate(app, exchange, is_stream=False)


async def generate_stream(app: ServingApp, exchange: Exchange) -> Response:
    """``POST /v2/models/{name}/generate_stream``: the same, as server-sent events."""
    return await _generate(app, exchange, is_stream=True)


async def _generate(app: ServingApp, exchange: Exchange, *, is_stream: bool) -> Response:
    body = _body(exchange)
    predictor = _generative_named(app, exchange, exchange.params["name"])
    text_input = body.get("text_input")
    if not isinstance(text_input, str):
        raise ValidationError(
            "'text_input' must be a string",
            hint='e.g. {"text_input": "Hello"}',
            detail={"field": "text_input"},
        )
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ValidationError("'parameters' must be an object", detail={"field": "parameters"})
    params = parse_sampling(parameters, max_context=predictor.context)
    chunks = traced(
        app,
        exchange,
        text_input,
        await _answer(predictor, text_input, params, parameters, is_stream=is_stream),
    )
    variant = exchange.variant
    assert variant is not None
    head = {"model_name": variant.model_name, "model_version": variant.model_version}
    if is_stream:
        return Response(200, b"", _EVENT_STREAM, stream=_generate_events(head, chunks))
    text, last = await _collect(chunks)
    return Response(200, orjson.dumps({**head, "text_output": text, "details": _details(last)}))


def _details(chunk: Chunk) -> dict[str, Any]:
    usage = chunk.usage.to_dict() if chunk.usage is not None else None
    return {"finish_reason": chunk.finish_reason, "usage": usage}


async def _generate_events(head: dict[str, Any], chunks: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            if chunk.finish_reason is None:
                if chunk.text:
                    yield sse_event({**head, "text_output": chunk.text})
            else:
                yield sse_event({**head, "text_output": chunk.text, "details": _details(chunk)})
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
