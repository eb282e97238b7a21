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

A deployment variant with a prompt version (the spec's ``llm:`` section) renders it into the
request first, with the body's ``variables`` (:mod:`lockgate.llm.prompt`); each generation is
timed into the variant's LLM metrics (:mod:`lockgate.serving.generation`), and a request the
router also gave a shadow is copied to it once the answer is complete
(:mod:`lockgate.serving.shadow_answers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from lockgate.errors import ClientClosedRequest, UserError, ValidationError
from lockgate.llm.params import parse_messages, parse_prompt, parse_sampling
from lockgate.llm.prompt import request_variables
from lockgate.serving.exchange import Exchange, Response
from lockgate.serving.generation import observe, record_failure
from lockgate.serving.inference import choose_variant
from lockgate.serving.payload import parse_json
from lockgate.serving.shadow_answers import shadow_copy
from lockgate.serving.traced import traced

if TYPE_CHECKING:
    from lockgate.llm.decoding import Chunk
    from lockgate.llm.params import ChatMessage, SamplingParams
    from lockgate.llm.prompt import BoundPrompt
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


def _variant_llm(exchange: Exchange) -> tuple[BoundPrompt | None, float | None]:
    """The prompt version and price of the deployment variant that answers (the spec's ``llm:``)."""
    live, variant = exchange.deployment, exchange.variant
    return live.llm_of(variant) if live is not None and variant is not None else (None, None)


async def _counted(
    exchange: Exchange, answer: Awaitable[AsyncIterator[Chunk]], price: float | None
) -> AsyncIterator[Chunk]:
    """The answer's chunks, timed into the answering variant's LLM metrics as they stream; a
    failure before the first chunk (an upstream's 502 or 504) is counted too."""
    variant = exchange.variant
    assert variant is not None
    stats = variant.generation_stats()
    started = time.perf_counter()
    try:
        chunks = await answer
    except Exception as exc:
        record_failure(stats, exc, started=started, price_per_1k_tokens=price)
        raise
    return observe(chunks, stats, price_per_1k_tokens=price, started=started)


async def _collect(chunks: AsyncIterator[Chunk], exchange: Exchange) -> tuple[str, Chunk]:
    """The whole answer and its last chunk; stopped (its slot in the batch freed, an upstream call
    closed) when the client goes away before it is ready."""
    collecting = asyncio.ensure_future(_joined_text(chunks))
    gone = asyncio.ensure_future(_disconnected(exchange))
    try:
        await asyncio.wait((collecting, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not collecting.done():
        collecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collecting
        raise ClientClosedRequest("the client closed the connection before its answer was ready")
    return collecting.result()


async def _disconnected(exchange: Exchange) -> None:
    """Return when the client has gone (the body has been read: what comes next is the end)."""
    while (await exchange.receive())["type"] != "http.disconnect":
        pass


async def _joined_text(chunks: AsyncIterator[Chunk]) -> tuple[str, Chunk]:
    parts, last = [], None
    try:
        async for chunk in chunks:
            parts.append(chunk.text)
            last = chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()  # a cancelled answer leaves the batch now, not when it is collected
    assert last is not None and last.usage is not None
    return "".join(parts), last


async def completions(app: ServingApp, exchange: Exchange) -> Response:
    """``POST /v1/completions``: continue a prompt."""
    body = _body(exchange)
    predictor = _generative(app, exchange, body)
    params = parse_sampling(body, max_context=predictor.context)
    prompt = parse_prompt(body)
    bound, price = _variant_llm(exchange)
    if bound is not None:
        prompt = bound.complete(prompt, request_variables(body))
    answer = _answer(predictor, prompt, params, body, is_stream=body.get("stream") is True)
    chunks = traced(app, exchange, prompt, await _counted(exchange, answer, price))
    head = {
        "id": "cmpl-" + exchange.request_id.decode("latin-1"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": body["model"],
    }
    copy = shadow_copy(exchange, body, is_chat=False, answer=_answer)
    if body.get("stream") is True:

        def choice(chunk: Chunk) -> dict[str, Any]:
            return {"text": chunk.text, "index": 0, "logprobs": None, "finish_reason": chunk.finish_reason}

        return Response(
            200, b"", _EVENT_STREAM, stream=_stream(head, chunks, choice, None, _wants_usage(body), copy)
        )
    text, last = await _collect(chunks, exchange)
    if copy is not None:
        copy(text)
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
    bound, price = _variant_llm(exchange)
    if bound is not None:
        messages = bound.chat(messages, request_variables(body))
    params = parse_sampling(body, max_context=predictor.context)
    answer = _answer(predictor, messages, params, body, is_stream=body.get("stream") is True)
    chunks = traced(app, exchange, _as_text(messages), await _counted(exchange, answer, price))
    head = {
        "id": "chatcmpl-" + exchange.request_id.decode("latin-1"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
    }
    copy = shadow_copy(exchange, body, is_chat=True, answer=_answer)
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
            200,
            b"",
            _EVENT_STREAM,
            stream=_stream(stream_head, chunks, choice, first, _wants_usage(body), copy),
        )
    text, last = await _collect(chunks, exchange)
    if copy is not None:
        copy(text)
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
    copy: Callable[[str], None] | None = None,
) -> AsyncIterator[bytes]:
    """The server-sent events of a streamed answer; closing it stops the generation. ``copy``
    gets the whole text once it is complete (the shadow's copy)."""
    if first is not None:
        yield sse_event({**head, "choices": [first]})
    usage = None
    parts: list[str] = []
    try:
        async for chunk in chunks:
            if chunk.text or chunk.finish_reason is not None:
                yield sse_event({**head, "choices": [choice(chunk)]})
            if copy is not None:
                parts.append(chunk.text)
            usage = chunk.usage
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    if copy is not None:
        copy("".join(parts))
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
    _, price = _variant_llm(exchange)  # the protocol's text_input is the model's text: no prompt version
    answer = _answer(predictor, text_input, params, parameters, is_stream=is_stream)
    chunks = traced(app, exchange, text_input, await _counted(exchange, answer, price))
    variant = exchange.variant
    assert variant is not None
    head = {"model_name": variant.model_name, "model_version": variant.model_version}
    if is_stream:
        return Response(200, b"", _EVENT_STREAM, stream=_generate_events(head, chunks))
    text, last = await _collect(chunks, exchange)
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
