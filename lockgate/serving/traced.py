"""A generation's chunks passed through unchanged, and recorded as an MLflow trace when the
server samples it (``lockgate serve --trace-sample``): what was asked, what came back, tokens,
time to first token, and which deployment, variant and model version answered. The record is
handed to the trace writer's queue when the answer ends (or the client goes away), so tracing
never waits on MLflow."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from lockgate.llm.traces import Generation, TraceSampler

if TYPE_CHECKING:
    from lockgate.llm.scheduler import Chunk
    from lockgate.serving.app import ServingApp
    from lockgate.serving.exchange import Exchange

__all__ = ["traced"]


def traced(
    app: ServingApp, exchange: Exchange, prompt: str, chunks: AsyncIterator[Chunk]
) -> AsyncIterator[Chunk]:
    """``chunks``, recorded when the request is sampled (otherwise ``chunks`` itself)."""
    sampler = app.traces
    request_id = exchange.request_id.decode("latin-1")
    if sampler is None or not sampler.wants(request_id):
        return chunks
    return _recorded(sampler, exchange, request_id, prompt, chunks)


async def _recorded(
    sampler: TraceSampler, exchange: Exchange, request_id: str, prompt: str, chunks: AsyncIterator[Chunk]
) -> AsyncIterator[Chunk]:
    start_ns, first_ns = time.time_ns(), None
    parts: list[str] = []
    last: Chunk | None = None
    error: str | None = None
    try:
        async for chunk in chunks:
            if first_ns is None and chunk.text:
                first_ns = time.time_ns()
            parts.append(chunk.text)
            last = chunk
            yield chunk
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
        if error is None and (last is None or last.finish_reason is None):
            error = "the client went away before the answer ended"
        variant = exchange.variant
        usage = last.usage if last is not None else None
        sampler.record(
            Generation(
                request_id=request_id,
                deployment=exchange.deployment.spec.name
                if exchange.deployment is not None
                else exchange.name or "",
                variant=variant.key if variant is not None else "",
                model_name=variant.model_name if variant is not None else "",
                model_version=variant.model_version if variant is not None else "",
                prompt=prompt,
                answer="".join(parts),
                prompt_tokens=usage.prompt_tokens if usage is not None else 0,
                completion_tokens=usage.completion_tokens if usage is not None else 0,
                start_ns=start_ns,
                end_ns=time.time_ns(),
                ttft_ms=(first_ns - start_ns) / 1e6 if first_ns is not None else None,
                finish_reason=last.finish_reason if last is not None else None,
                prompt_version=_prompt_version(exchange),
                error=error,
                endpoint=str(exchange.scope["path"]),
            )
        )


def _prompt_version(exchange: Exchange) -> str | None:
    """The prompt version (``NAME@VERSION``) the answering deployment variant rendered, if any."""
    live, variant = exchange.deployment, exchange.variant
    if live is None or variant is None:
        return None
    bound, _ = live.llm_of(variant)
    return bound.ref if bound is not None else None
