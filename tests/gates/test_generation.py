"""The generation check's pure parts: the evaluation set, the reference metrics, the judge's reply,
the paired comparison with the champion, and the policy keys."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from lockgate.errors import NotFound, ValidationError
from lockgate.gates.checks.generation import generation_comparison, generation_summary
from lockgate.gates.generation import (
    GenerationExample,
    GenerationOutputs,
    exact_match,
    load_generation_examples,
    parse_judge_score,
    rouge_l,
)
from lockgate.gates.kinds import CHECK_KINDS, GateInputs, run_check
from lockgate.gates.policy import parse_policy


def _write(path: Path, *lines: object) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_the_evaluation_set_takes_inputs_or_variables(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "eval.jsonl",
        {"input": "What is a gate?", "reference": "A check."},
        "",
        {"variables": {"question": "Why?", "n": 3}, "reference": "Because."},
    )
    first, second = load_generation_examples(path)
    assert first == GenerationExample("A check.", "eval.jsonl line 1", input="What is a gate?")
    assert second.variables == {"question": "Why?", "n": "3"} and second.where == "eval.jsonl line 3"
    assert second.text_for_judge() == "question: Why?\nn: 3"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"input": "x", "reference": "y"', "eval.jsonl line 2: not valid JSON"),
        ({"input": "x"}, "eval.jsonl line 2: an example is"),
        ({"reference": "y"}, "eval.jsonl line 2: give exactly one of input and variables"),
        (
            {"input": "x", "variables": {}, "reference": "y"},
            "line 2: give exactly one of input and variables",
        ),
        ({"variables": ["x"], "reference": "y"}, "eval.jsonl line 2: variables must map names to strings"),
        ({"input": 3, "reference": "y"}, "eval.jsonl line 2: input must be a string"),
    ],
)
def test_a_bad_line_is_named(tmp_path: Path, line: object, message: str) -> None:
    path = _write(tmp_path / "eval.jsonl", {"input": "fine", "reference": "ok"}, line)
    with pytest.raises(ValidationError, match=message):
        load_generation_examples(path)


def test_a_missing_or_empty_evaluation_set_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        load_generation_examples(tmp_path / "nope.jsonl")
    with pytest.raises(ValidationError, match="holds no examples"):
        load_generation_examples(_write(tmp_path / "empty.jsonl", ""))


def test_reference_metrics() -> None:
    assert exact_match("  The Gate\nchecks. ", "the gate checks.") == 1.0
    assert exact_match("the gate", "the gate checks") == 0.0
    from lockgate.gates.generation import _rouge

    _rouge()  # first: it keeps absl's logging from holding a capture stream (see there)
    from rouge_score import rouge_scorer

    root = logging.getLogger()
    guard = logging.NullHandler()  # else absl's first log calls logging.basicConfig() (see _rouge)
    root.addHandler(guard)
    try:
        scorer = rouge_scorer.RougeScorer(["rougeL"])
    finally:
        root.removeHandler(guard)
    for answer, reference in [("the cat sat", "the cat sat down"), ("a b c", "c b a"), ("", "x")]:
        assert rouge_l(answer, reference) == scorer.score(reference, answer)["rougeL"].fmeasure
    assert rouge_l("the cat sat down", "the cat sat down") == 1.0


@pytest.mark.parametrize(
    ("reply", "scaled"),
    [
        ("Score: 7", 0.7),
        ("The answer is close.\n**Score**: 8/10", 0.8),
        ('{"score": 10, "why": "exact"}', 1.0),
        ('Reasoning... {"score": "4"}', 0.4),
        ("3", 0.3),
        ("  6/10.", 0.6),
        ("score is 0", 0.0),
    ],
)
def test_the_judge_score_is_read_robustly(reply: str, scaled: float) -> None:
    assert parse_judge_score(reply, where="eval.jsonl line 4", low=0, high=10) == pytest.approx(scaled)


def test_a_reply_without_a_score_names_the_example() -> None:
    with pytest.raises(
        ValidationError, match=r"the judge's reply for eval.jsonl line 4 has no score: 'Looks"
    ):
        parse_judge_score("Looks good to me.", where="eval.jsonl line 4", low=0, high=10)
    with pytest.raises(ValidationError, match=r"score for eval.jsonl line 2 is 11, outside"):
        parse_judge_score("Score: 11", where="eval.jsonl line 2", low=0, high=10)
    assert parse_judge_score("Score: 3", where="x", low=1, high=5) == 0.5


def test_an_equal_candidate_passes_and_a_worse_one_fails_the_paired_tests() -> None:
    same = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    for metric, test in [("exact_match", "bootstrap"), ("exact_match", "mcnemar"), ("rouge_l", "bootstrap")]:
        kwargs = {"margin": 0.0, "alpha": 0.05, "resamples": 500, "seed": 0, "test": test}
        result = generation_comparison(metric, same, same, **kwargs)  # type: ignore[arg-type]
        assert result.passed, result.message
        assert result.name == f"champion {metric} ({test})"
        worse = generation_comparison(metric, [0.0] * 8, same, **kwargs)  # type: ignore[arg-type]
        assert not worse.passed and "lower bound" in worse.message
    # McNemar's exact interval stays wide on a few discordant pairs: one better example is no evidence
    better = [1.0] * 8
    assert generation_comparison(
        "exact_match", better, same, margin=0, alpha=0.05, resamples=200, seed=0
    ).passed
    assert not generation_comparison(
        "exact_match",
        better[:3],
        [1.0, 0.0, 1.0],
        margin=0,
        alpha=0.05,
        resamples=200,
        seed=0,
        test="mcnemar",
    ).passed
    assert not generation_summary("rouge_l", [0.2, 0.4], None, 0.5).passed
    assert generation_summary("rouge_l", [0.6, 0.4], [0.1, 0.1], 0.5).numbers["baseline"] == 0.1


POLICY = """
seed: 1
checks:
  generation:
    eval_set: eval.jsonl
    metrics: [exact_match, rouge_l, judge]
    judge: {url: "http://127.0.0.1:9/v1", model: judge, prompt: judge@1, api_key_env: JUDGE_KEY}
    thresholds: {rouge_l: 0.5}
    resamples: 200
"""


def test_the_kind_runs_on_plain_answers() -> None:
    policy = parse_policy(POLICY)
    ((kind, spec),) = policy.checks
    examples = tuple(
        GenerationExample(r, f"e line {i}", input="q") for i, r in enumerate(["a b", "c d", "e f"])
    )
    outputs = GenerationOutputs(
        examples, ("a b", "c d", "e f"), ("a b", "c x", "e f"), (1.0, 1.0, 1.0), (1.0, 0.5, 1.0)
    )
    results = run_check(kind, spec, GateInputs(seed=1, generation=outputs))
    assert [r.name for r in results] == [
        "generation exact_match",
        "champion exact_match (bootstrap)",
        "generation rouge_l",
        "champion rouge_l (bootstrap)",
        "generation judge",
        "champion judge (bootstrap)",
    ]
    assert all(r.passed and r.kind == "generation" for r in results)
    worse = GenerationOutputs(examples, ("x", "y", "z"), ("a b", "c d", "e f"), (0.0,) * 3, (1.0,) * 3)
    failed = [r.name for r in run_check(kind, spec, GateInputs(seed=1, generation=worse)) if not r.passed]
    assert failed == [
        "champion exact_match (bootstrap)",
        "generation rouge_l",
        "champion rouge_l (bootstrap)",
        "champion judge (bootstrap)",
    ]
    ((kind, plain),) = parse_policy("checks:\n  generation: {eval_set: e.jsonl}\n").checks
    first = GenerationOutputs(examples, ("a b",) * 3)
    alone = run_check(kind, plain, GateInputs(generation=first, baseline_ref="m@champion is not set"))
    assert [(r.name, r.status) for r in alone] == [
        ("generation exact_match", "passed"),
        ("champion exact_match", "skipped"),
        ("generation rouge_l", "passed"),
        ("champion rouge_l", "skipped"),
    ]
    assert "m@champion is not set" in alone[1].message


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("{eval_set: e.jsonl, metrics: [judge]}", "metric 'judge' needs a judge"),
        ("{eval_set: e.jsonl, metrics: [bleu]}", "metrics"),
        ("{eval_set: e.jsonl, thresholds: {judge: 0.5}}", "thresholds names judge"),
        ("{eval_set: e.jsonl, thresholds: {rouge_l: 5}}", "a mean score in"),
        ("{eval_set: e.jsonl, metrics: [judge], judge: {url: x, model: m, prompt: j@1}}", "not an http"),
        ("{eval_set: e.jsonl, margin: '0.1'}", "margin"),
        ("{eval_set: e.jsonl, metrics: [rouge_l], test: mcnemar}", "test 'mcnemar' is for exact_match"),
        ("{eval_set: e.jsonl, model: m@1, endpoint: {url: 'http://h/v1', model: m}}", "not both"),
    ],
)
def test_bad_generation_settings_are_named(settings: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        parse_policy(f"checks:\n  generation: {settings}\n")
    assert "line 2" in info.value.message
    assert "generation" in CHECK_KINDS


def test_scoring_rouge_adds_no_handler_to_the_root_logger() -> None:
    """rouge-score logs through absl, which would call logging.basicConfig() on first use."""
    from lockgate.gates import generation

    generation._rouge.cache_clear()
    root = logging.getLogger()
    before = list(root.handlers)
    assert rouge_l("the gate compares", "the gate checks") > 0
    assert root.handlers == before
