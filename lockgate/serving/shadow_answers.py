"""Copies of a chat or completion to a deployment's generative shadow, compared off the request path.

When the router picks a shadow for a ``/v1/chat/completions`` or ``/v1/completions`` request, the
handler calls :func:`shadow_copy` once the primary's answer is complete: the copy is queued on the
deployment's :class:`~lockgate.serving.mirror.ShadowMirror` (dropped when the queue is full) and,
later, generates the shadow's own answer from the same body, with the shadow's prompt version and
the same sampling fields (a local model or an upstream, whole, not streamed), counted in the
shadow's own LLM metrics. The mirror compares the two
texts. A shadow that does not generate text, or a body it cannot take, counts as a failed copy.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from lockgate.errors import UserError
from lockgate.llm.params import parse_messages, parse_prompt, parse_sampling
from lockgate.llm.prompt import request_variables
from lockgate.serving.generation import observe, record_failure

if TYPE_CHECKING:
    from lockgate.llm.decoding import Chunk
    from lockgate.llm.params import ChatMessage
    from lockgate.llm.runtime import GenerativePredictor
    from lockgate.serving.exchange import Exchange
    from lockgate.serving.live import LiveDeployment
    from lockgate.serving.variant import Variant

__all__ = ["Answer", "shadow_copy"]

Answer = Callable[..., Awaitable[AsyncIterator["Chunk"]]]
"""How a generative variant answers: ``answer(predictor, prompt_or_messages, params, body,
is_stream=...)`` (the completions handlers' own, for a local model or an upstream)."""


def shadow_copy(
    exchange: Exchange, body: Mapping[str, Any], *, is_chat: bool, answer: Answer
) -> Callable[[str], None] | None:
    """What to call with the primary's text when it is complete (None: no shadow for this request)."""
    live, shadow = exchange.deployment, exchange.shadow
    if live is None or shadow is None:
        return None
    started = time.perf_counter()
    unit = exchange.unit

    def offer(primary_text: str) -> None:
        primary_ms = (time.perf_counter() - started) * 1000.0
        generate = _generate(live, shadow, body, is_chat, answer)
        live.mirror.offer_answer(shadow, generate, primary_text, primary_ms, unit)

    return offer


def _generate(
    live: LiveDeployment, shadow: Variant, body: Mapping[str, Any], is_chat: bool, answer: Answer
) -> Callable[[], Awaitable[str]]:
    async def generate() -> str:
        predictor = shadow.predictor
        if not getattr(predictor, "is_generative", False):
            raise UserError(f"the shadow '{shadow.model_name}' does not generate text")
        model: GenerativePredictor = predictor  # type: ignore[assignment]
        bound, price = live.llm_of(shadow)
        request: str | tuple[ChatMessage, ...]
        if is_chat:
            request = parse_messages(body)
            if bound is not None:
                request = bound.chat(request, request_variables(body))
        else:
            request = parse_prompt(body)
            if bound is not None:
                request = bound.complete(request, request_variables(body))
        params = parse_sampling(body, max_context=model.context)
        stats = shadow.generation_stats()
        started = time.perf_counter()
        try:
            chunks = await answer(model, request, params, body, is_stream=False)
        except Exception as exc:
            record_failure(stats, exc, started=started, price_per_1k_tokens=price)
            raise
        counted = observe(chunks, stats, price_per_1k_tokens=price, started=started)
        return "".join([chunk.text async for chunk in counted])

    return generate
