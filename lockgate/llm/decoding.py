"""The decisions of one decoding step, as pure functions: what text may be sent, and why a
sequence ends.

A stop string can straddle token boundaries ("\\n\\n" made of two "\\n" tokens), so the text a
sequence has produced is checked as a whole after each token, and a tail that could still become
a stop string is held back until the next token says whether it does. A trailing replacement
character (a UTF-8 character split between byte-level tokens) is held back the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Chunk",
    "Delta",
    "FinishReason",
    "Usage",
    "finish_reason",
    "next_delta",
    "stop_index",
    "unsure_tail",
]

FinishReason = Literal["stop", "length"]
_REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class Usage:
    """Token counts of one request, as OpenAI's ``usage`` reports them."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class Chunk:
    """Text a request produced since its last chunk; the last one has ``finish_reason`` and
    ``usage``. The local runtime and an upstream endpoint both answer in these."""

    text: str
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    error: str | None = None


@dataclass(frozen=True)
class Delta:
    """What to send after a step: ``text`` (maybe empty) and whether a stop string ended it."""

    text: str
    is_stopped: bool


def stop_index(text: str, stops: tuple[str, ...]) -> int | None:
    """Where the earliest stop string starts in ``text``, or None."""
    found = [i for i in (text.find(stop) for stop in stops if stop) if i >= 0]
    return min(found) if found else None


def unsure_tail(text: str, stops: tuple[str, ...]) -> int:
    """How many characters at the end of ``text`` must wait: the longest end that is the start
    of a stop string, or a split UTF-8 character."""
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:size]):
                held = size
                break
    if text.endswith(_REPLACEMENT):
        held = max(held, len(text) - len(text.rstrip(_REPLACEMENT)))
    return held


def next_delta(text: str, sent: int, stops: tuple[str, ...], *, is_last: bool) -> Delta:
    """The text to send now, given the whole ``text`` produced so far and ``sent`` characters of
    it already sent. The last step (``is_last``: out of tokens) sends everything but a stop."""
    at = stop_index(text, stops)
    if at is not None:
        return Delta(text[sent:at] if at > sent else "", is_stopped=True)
    end = len(text) if is_last else len(text) - unsure_tail(text, stops)
    return Delta(text[sent:end] if end > sent else "", is_stopped=False)


def finish_reason(
    *, is_stopped: bool, is_eos: bool, completion_tokens: int, max_tokens: int, context_left: int
) -> FinishReason | None:
    """Why a sequence ends now (a stop string or the end token: ``stop``; out of tokens or of
    context: ``length``), or None while it goes on."""
    if is_stopped or is_eos:
        return "stop"
    if completion_tokens >= max_tokens or context_left <= 0:
        return "length"
    return None
