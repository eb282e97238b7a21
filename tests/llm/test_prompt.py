"""Rendering a variant's prompt version into a request: the variables, the user's text, the 422."""

from __future__ import annotations

import pytest

from lockgate.errors import UserError, ValidationError
from lockgate.llm.params import ChatMessage
from lockgate.llm.prompt import bind_prompt, request_variables

CHAT = (
    ChatMessage("system", "be kind"),
    ChatMessage("user", "hello"),
    ChatMessage("assistant", "hi"),
    ChatMessage("user", "how do I roll back?"),
)


def test_a_template_with_input_replaces_the_last_user_message() -> None:
    bound = bind_prompt("support@2", "As {{ product }} support, answer: {{input}}", {"product": "lockgate"})
    assert bound.variables == {"product", "input"} and bound.takes_input
    out = bound.chat(CHAT, {})
    assert out[:3] == CHAT[:3]
    assert out[3] == ChatMessage("user", "As lockgate support, answer: how do I roll back?")
    assert bound.complete("why?", {}) == "As lockgate support, answer: why?"


def test_a_template_without_input_is_the_system_message() -> None:
    bound = bind_prompt("support@1", "You answer in a {{tone}} tone.", {})
    out = bound.chat(CHAT, {"tone": "brief"})
    assert out[0] == ChatMessage("system", "You answer in a brief tone.")
    assert out[1:] == tuple(m for m in CHAT if m.role != "system")
    assert bound.complete("Q: why?", {"tone": "brief"}) == "You answer in a brief tone.\nQ: why?"


def test_fixed_variables_win_and_values_are_not_rendered_again() -> None:
    bound = bind_prompt("p@1", "{{a}} {{b}}", {"a": "fixed"})
    assert bound.render({"a": "asked", "b": "{{a}}"}) == "fixed {{a}}"


def test_missing_variables_are_a_422_naming_them() -> None:
    bound = bind_prompt("p@3", "{{tone}} {{audience}} {{input}}", {})
    with pytest.raises(ValidationError) as caught:
        bound.chat(CHAT, {})
    assert caught.value.http_status == 422
    assert "audience, tone" in caught.value.message and "p@3" in caught.value.message
    assert caught.value.detail == {"field": "variables", "missing": ["audience", "tone"]}


def test_request_variables_are_text() -> None:
    assert request_variables({}) == {}
    assert request_variables({"variables": {"n": 3, "ok": True, "s": "x"}}) == {
        "n": "3",
        "ok": "true",
        "s": "x",
    }
    for bad in ({"variables": [1]}, {"variables": {"x": {"y": 1}}}):
        with pytest.raises(ValidationError):
            request_variables(bad)


def test_a_jinja_or_chat_template_is_refused() -> None:
    with pytest.raises(UserError, match="not a text template"):
        bind_prompt("p@1", "{% if x %}a{% endif %}", {})
    with pytest.raises(UserError, match="not a text template"):
        bind_prompt("p@1", [{"role": "user", "content": "hi"}], {})
