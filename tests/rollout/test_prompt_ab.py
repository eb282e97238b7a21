"""The prompt A/B simulation the LLM benchmark reports: users prefer prompt B 10% more often."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lockgate.errors import ValidationError
from lockgate.rollout.prompt_ab import PROMPT_AB_SPEC, prompt_ab
from lockgate.rollout.spec import load_spec, parse_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "specs" / "prompt_ab.yaml"


def test_the_example_spec_is_the_one_simulated_and_the_one_the_docs_show() -> None:
    assert load_spec(EXAMPLE) == parse_spec(PROMPT_AB_SPEC)
    doc = (EXAMPLE.parents[2] / "docs" / "llm.md").read_text(encoding="utf-8")
    shown = doc.split("`examples/specs/prompt_ab.yaml`:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    assert parse_spec(yaml.safe_load(shown)) == load_spec(EXAMPLE)


def test_feedback_picks_prompt_b_and_an_aa_test_picks_no_winner() -> None:
    result = prompt_ab(12, seed=5)
    assert result.correct >= 0.9
    assert result.aa_false_winner <= 0.1
    assert result.median_decision_s is not None
    assert result.to_dict()["thumbs_up_rate_b"] == 0.55
    assert prompt_ab(12, seed=5) == result  # deterministic for a seed


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValidationError):
        prompt_ab(0)
    with pytest.raises(ValidationError):
        prompt_ab(5, rate_b=1.5)
