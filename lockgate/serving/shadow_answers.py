"""Copies of a chat or completion to a deployment's generative shadow, compared off the request path.

When the router picks a shadow for a ``/v1/chat/completions`` or ``/v1/completions`` request, the
handler calls :func:`shadow_copy` once the primary's answer is complete: the copy is queued on the
deployment's :class:`~lockgate.serving.mirror.ShadowMirror` (dropped when the queue is full) and,
later, generates the shadow's own answer from the same body, with the shadow's prompt version and
the same sampling fields, counted in the shadow's own LLM metrics. The mirror compares the two
texts. A shadow that does not generate text, or a body it cannot take, counts as a failed copy.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from lockgate.errors import UserError
from lockgate.llm.params import parse_messages, parse_prompt, parse_sampling
from lockgate.llm.prompt import request_variables
from lockgate.serving.generation import observe

if TYPE_CHECKING:
    from lockgate.llm.runtime import GenerativePredictor
    from lockgate.serving.exchange import Exchange
    from lockgate.serving.live import LiveDeployment
    from lockgate.serving.variant import Variant

__all__ = ["shadow_copy"]


def shadow_copy(
    exchange: Exchange, body: Mapping[str, Any], *, is_chat: bool
) -> Callable[[str], None] | None:
    """What to call with the primary's text when it is complete (None: no shadow for this request)."""
    live, shadow = exchange.deployment, exchange.shadow
    if live is None or shadow is None:
        return None
    started = time.perf_counter()
    unit = exchange.unit

    def offer(primary_text: str) -> None:
        primary_ms = (time.perf_counter() - started) * 1000.0
        live.mirror.offer_answer(shadow, _answer(live, shadow, body, is_chat), primary_text, primary_ms, unit)

    return offer


def _answer(
    live: LiveDeployment, shadow: Variant, body: Mapping[str, Any], is_chat: bool
) -> Callable[[], Awaitable[str]]:
    async def generate() -> str:
        predictor = shadow.predictor
        if not getattr(predictor, "is_generative", False):
            raise UserError(f"the shadow '{shadow.model_name}' does not generate text")
        model: GenerativePredictor = predictor  # type: ignore[assignment]
        bound, price = live.llm_of(shadow)
        if is_chat:
            messages = parse_messages(body)
            if bound is not None:
                messages = bound.chat(messages, request_variables(body))
            prompt = model.chat_prompt(messages)
        else:
            prompt = parse_prompt(body)
            if bound is not None:
                prompt = bound.complete(prompt, request_variables(body))
        params = parse_sampling(body, max_context=model.context)
        prompt_ids = model.encode(prompt)
        model.scheduler.check_fits(len(prompt_ids), params.max_tokens)
        chunks = observe(
            model.generate(prompt_ids, params),
            shadow.generation_stats(),
            prompt_tokens=len(prompt_ids),
            price_per_1k_tokens=price,
        )
        return "".join([chunk.text async for chunk in chunks])

    return generate
