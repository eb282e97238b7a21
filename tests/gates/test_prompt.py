"""Prompt scoring and the `prompt` kind on plain inputs, with a fake responder and embedder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from lockgate.errors import ValidationError
from lockgate.gates.kinds import GateInputs, run_check
from lockgate.gates.policy import parse_policy
from lockgate.gates.prompt import PromptExample, render, score_prompt

EXAMPLES = (
    PromptExample({"country": "France"}, "Paris"),
    PromptExample({"country": "Japan"}, "Tokyo"),
    PromptExample({"country": "Peru"}, "Lima"),
)
CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Peru": "Lima"}


def fake_llm(prompt: str) -> str:
    """Answers with the capital only when the prompt asks for one word; otherwise rambles."""
    country = prompt.rsplit(" ", 1)[-1].strip("?")
    capital = CAPITALS.get(country, "I do not know")
    return capital if "one word" in prompt else f"The capital of {country} is {capital}."


def letters(texts: Sequence[str]) -> np.ndarray[Any, Any]:
    rows = np.zeros((len(texts), 26))
    for row, text in enumerate(texts):
        for char in text.lower():
            if "a" <= char <= "z":
                rows[row, ord(char) - 97] += 1
    return rows


def test_render_fills_variables_and_names_a_missing_one() -> None:
    assert render("Capital of {{ country }}?", {"country": "Peru"}) == "Capital of Peru?"
    with pytest.raises(ValidationError, match="the prompt needs city"):
        render("{{city}} in {{country}}", {"country": "Peru"})


def test_exact_and_similarity_scores() -> None:
    good = score_prompt("In one word, the capital of {{country}}", EXAMPLES, fake_llm)
    chatty = score_prompt("The capital of {{country}}", EXAMPLES, fake_llm)
    assert good.hits == (1, 1, 1) and chatty.accuracy == 0.0 and good.similarities is None
    similar = score_prompt(
        "The capital of {{country}}", EXAMPLES, fake_llm, embed=letters, min_similarity=0.5
    )
    assert similar.similarities is not None and similar.mean_similarity is not None
    assert 0 < similar.mean_similarity < 1 and len(similar.hits) == 3


def _inputs(candidate: str, baseline: str | None) -> GateInputs:
    return GateInputs(
        prompt_template=candidate,
        baseline_prompt_template=baseline,
        prompt_examples=EXAMPLES,
        respond=fake_llm,
        embed=letters,
    )


def test_a_worse_prompt_fails_against_the_champion_and_a_better_one_passes() -> None:
    policy = parse_policy("checks:\n  prompt: {examples: x.jsonl, threshold: 0.5}\n")
    ((kind, spec),) = policy.checks
    better, worse = "In one word, the capital of {{country}}", "The capital of {{country}}"
    (passed,) = run_check(kind, spec, _inputs(better, worse))
    assert passed.passed and passed.name == "prompt exact match" and passed.numbers["baseline"] == 0.0
    (failed,) = run_check(kind, spec, _inputs(worse, better))
    assert not failed.passed and "below the baseline's 1" in failed.message
    assert run_check(kind, spec, GateInputs())[0].passed is False


def test_similarity_scoring_reports_the_mean_similarity() -> None:
    policy = parse_policy(
        "checks:\n  prompt: {examples: x.jsonl, scoring: similarity, min_similarity: 0.5}\n"
    )
    ((kind, spec),) = policy.checks
    (result,) = run_check(kind, spec, _inputs("The capital of {{country}}", None))
    assert result.passed and 0 < float(result.numbers["mean_similarity"] or 0) < 1  # type: ignore[arg-type]


def test_prompt_policy_keys_are_validated() -> None:
    with pytest.raises(ValidationError) as info:
        parse_policy(
            "checks:\n  prompt:\n    examples: x.jsonl\n    responder: not-an-entry\n    scoring: bleu\n"
        )
    assert "line 4: checks.prompt.responder: 'not-an-entry' is not a Python entry" in info.value.message
    assert "line 5: checks.prompt.scoring: must be 'exact' or 'similarity'" in info.value.message
