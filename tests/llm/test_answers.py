"""Answering a list of prompts offline with the project's tiny model: greedy, seeded, batched."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.errors import UserError
from lockgate.llm.answers import answer_all, load_generative
from lockgate.llm.params import ChatMessage

PROMPTS = ["user: What is a canary?\nassistant:", "The server", "user: How does a rollout end?\nassistant:"]


@pytest.mark.slow
def test_answers_are_repeatable_and_do_not_depend_on_the_batch(tiny_model: Path) -> None:
    model = load_generative(tiny_model)
    together = answer_all(model, PROMPTS, max_tokens=8, seed=0)
    assert len(together) == 3 and all(isinstance(a, str) and a for a in together)
    assert answer_all(model, PROMPTS, max_tokens=8, seed=0) == together  # a second event loop, same answers
    alone = [answer_all(model, [p], max_tokens=8, seed=0)[0] for p in PROMPTS]
    assert alone == together
    question = "What is a canary?"
    chat_prompt = model.chat_prompt((ChatMessage("user", question),))
    assert chat_prompt == "user: What is a canary?\nassistant:"  # the tiny tokenizer has no chat template
    assert answer_all(model, [question], max_tokens=8, seed=0, is_chat=True) == [together[0]]
    short = answer_all(model, PROMPTS[:1], max_tokens=2, seed=0)[0]
    assert together[0].startswith(short)
    cut = together[0][len(together[0]) // 2 :][:2]  # a stop string from inside the answer
    stopped = answer_all(model, PROMPTS[:1], max_tokens=8, seed=0, stop=[cut])[0]
    assert stopped == together[0][: together[0].index(cut)]


@pytest.mark.slow
def test_a_prompt_too_long_is_named(tiny_model: Path) -> None:
    model = load_generative(tiny_model)
    with pytest.raises(
        UserError, match=r"eval.jsonl line 2: the prompt has \d+ tokens and max_tokens is 100"
    ):
        answer_all(
            model, ["short", "word " * 200], max_tokens=100, seed=0, names=["line 1", "eval.jsonl line 2"]
        )


def test_a_folder_without_a_generative_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is not a generative model"):
        load_generative(tmp_path)
