"""Chat messages into one prompt: the tokenizer's own chat template when it has one, otherwise
lockgate's plain template.

The plain template writes each message as ``<role>: <content>`` on its own line and ends with
``assistant:`` for the model to continue::

    system: You answer briefly.
    user: What is a canary?
    assistant:
"""

from __future__ import annotations

from lockgate.llm.params import ChatMessage

__all__ = ["plain_chat_prompt"]


def plain_chat_prompt(messages: tuple[ChatMessage, ...]) -> str:
    """The prompt lockgate's plain template makes of ``messages``."""
    lines = [f"{message.role}: {message.content}" for message in messages]
    return "\n".join([*lines, "assistant:"])
