from __future__ import annotations

from typing import Any

import pytest

from lockgate.errors import ValidationError
from lockgate.llm.params import ChatMessage, SamplingParams, parse_messages, parse_prompt, parse_sampling


def test_defaults_and_fields_are_read() -> None:
    assert parse_sampling({}, max_context=128) == SamplingParams()
    params = parse_sampling(
        {"max_tokens": 5, "temperature": 0, "top_p": 0.5, "stop": "\n", "seed": 7}, max_context=128
    )
    assert params == SamplingParams(max_tokens=5, temperature=0.0, top_p=0.5, stop=("\n",), seed=7)
    assert parse_sampling({"max_completion_tokens": 3}, max_context=128).max_tokens == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 129}, "max_tokens"),
        ({"max_tokens": "5"}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"stop": ["a", 1]}, "stop"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"seed": -1}, "seed"),
        ({"n": 2}, "n"),
    ],
)
def test_a_wrong_field_is_a_validation_error_naming_it(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_sampling(body, max_context=128)
    assert caught.value.detail == {"field": field}
    assert field in caught.value.message


def test_prompts() -> None:
    assert parse_prompt({"prompt": "hi"}) == "hi"
    assert parse_prompt({"prompt": ["hi"]}) == "hi"
    assert parse_prompt({}) == ""
    with pytest.raises(ValidationError):
        parse_prompt({"prompt": [1, 2, 3]})


def test_messages() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert parse_messages(body) == (ChatMessage("user", "hi"),)
    for bad in ({}, {"messages": []}, {"messages": [{"role": "robot", "content": "x"}]}, {"messages": ["x"]}):
        with pytest.raises(ValidationError):
            parse_messages(bad)
