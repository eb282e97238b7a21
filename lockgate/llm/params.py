"""An OpenAI-style request body checked into plain values, once, at the edge; and where the
server decodes (:data:`DecodeEngine`, ``lockgate serve --decode-engine``).

Every field lockgate reads is checked here (type and range; a wrong one is a 400/422 naming the
field and the fix); fields it does not use (``user``, ``presence_penalty``, ...) are ignored, as
OpenAI-compatible servers commonly do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from lockgate.errors import UserError, ValidationError

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "ChatMessage",
    "DecodeEngine",
    "SamplingParams",
    "check_decode_engine",
    "parse_messages",
    "parse_prompt",
    "parse_sampling",
]

DEFAULT_MAX_TOKENS = 16
_MAX_STOPS = 4
_ROLES = ("system", "user", "assistant")

DecodeEngine = Literal["process", "thread"]


def check_decode_engine(engine: str) -> DecodeEngine:
    """``engine`` when it is one lockgate has, else a user error listing them."""
    if engine not in get_args(DecodeEngine):
        raise UserError(
            f"decode engine '{engine}' is not one of: {', '.join(get_args(DecodeEngine))}",
            hint="process (decoding in a process of its own, the default) or thread",
        )
    return engine  # type: ignore[return-value]


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens: ``temperature`` 0 is greedy; ``seed`` makes sampling repeatable."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


def _number(body: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValidationError(
            f"'{name}' must be a number in [{low}, {high}], got {value!r}",
            hint=f"e.g. {default}",
            detail={"field": name},
        )
    return float(value)


def parse_sampling(body: Mapping[str, Any], *, max_context: int) -> SamplingParams:
    """The sampling fields of a completion or chat body (``max_completion_tokens`` is chat's
    newer name for ``max_tokens``)."""
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= max_context:
        raise ValidationError(
            f"'max_tokens' must be a whole number from 1 to {max_context} (the model's context), "
            f"got {max_tokens!r}",
            hint="ask for fewer tokens",
            detail={"field": "max_tokens"},
        )
    stop = body.get("stop")
    stops: tuple[str, ...]
    if stop is None:
        stops = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and len(stop) <= _MAX_STOPS and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise ValidationError(
            f"'stop' must be a string or a list of up to {_MAX_STOPS} strings",
            hint='e.g. "stop": ["\\n"]',
            detail={"field": "stop"},
        )
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise ValidationError(
            f"'seed' must be a whole number from 0 to 2^63-1, got {seed!r}", detail={"field": "seed"}
        )
    n = body.get("n", 1)
    if n != 1:
        raise ValidationError(
            f"'n' must be 1 here, got {n!r}", hint="send n requests instead", detail={"field": "n"}
        )
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 1e-6, 1.0),
        stop=tuple(s for s in stops if s),
        seed=seed,
    )


def parse_prompt(body: Mapping[str, Any]) -> str:
    """The prompt of a completion body: one string (a list of one string is taken too)."""
    prompt = body.get("prompt", "")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ValidationError(
            "'prompt' must be a string",
            hint="send one prompt per request (token-id and batched prompts are not taken)",
            detail={"field": "prompt"},
        )
    return prompt


def parse_messages(body: Mapping[str, Any]) -> tuple[ChatMessage, ...]:
    """The messages of a chat body: a non-empty list of ``{"role", "content"}`` with text content
    (a list of ``{"type": "text"}`` parts is joined)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValidationError(
            "'messages' must be a non-empty list",
            hint='e.g. "messages": [{"role": "user", "content": "Hello"}]',
            detail={"field": "messages"},
        )
    parsed = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            content = "".join(p for p in parts if isinstance(p, str)) if len(parts) == len(content) else None
        if role not in _ROLES or not isinstance(content, str):
            raise ValidationError(
                f"messages[{i}] must have a role ({', '.join(_ROLES)}) and text content",
                hint='e.g. {"role": "user", "content": "Hello"}',
                detail={"field": f"messages[{i}]"},
            )
        parsed.append(ChatMessage(role, content))
    return tuple(parsed)
