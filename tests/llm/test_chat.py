from __future__ import annotations

from lockgate.llm.chat import plain_chat_prompt
from lockgate.llm.params import ChatMessage


def test_the_plain_template_ends_with_the_assistant_turn() -> None:
    messages = (ChatMessage("system", "Be brief."), ChatMessage("user", "What is a canary?"))
    assert plain_chat_prompt(messages) == "system: Be brief.\nuser: What is a canary?\nassistant:"
