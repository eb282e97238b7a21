"""The LLM judge against a real OpenAI-compatible server on 127.0.0.1 (tests/support/judge.py)."""

from __future__ import annotations

import pytest

from lockgate.errors import Unavailable, UserError, ValidationError
from lockgate.gates.checks.generation import JudgeSpec
from lockgate.gates.generation import GenerationExample
from lockgate.gates.judge import Judge, judge_api_key
from tests.support import JUDGE_PROMPT, JudgeServer, free_port

EXAMPLE = GenerationExample("A check.", "eval.jsonl line 3", input="What is a gate?")


def _judge(url: str, key: str | None = None, template: str = JUDGE_PROMPT) -> Judge:
    spec = JudgeSpec(url=url, model="judge-lm", prompt="judge@1", timeout_s=5)
    return Judge(spec, template, "judge@1", api_key=key)


def test_the_judge_scores_each_answer_from_the_prompt_it_fills() -> None:
    with JudgeServer(key="s3cret") as server, _judge(server.url, key="s3cret") as judge:
        assert judge.score(EXAMPLE, "a check.", whose="candidate") == 0.2  # not equal: Score: 2
        assert judge.score(EXAMPLE, "A check.", whose="champion") == 1.0
    assert server.prompts[0].startswith("Question: What is a gate?\n<reference>A check.</reference>")
    assert "<answer>a check.</answer>" in server.prompts[0]


def test_a_reply_without_a_score_names_the_example() -> None:
    no_score = r"reply for eval.jsonl line 3 \(candidate\) has no score"
    with (
        JudgeServer(mode="no-score") as server,
        _judge(server.url) as judge,
        pytest.raises(ValidationError, match=no_score),
    ):
        judge.score(EXAMPLE, "x", whose="candidate")


def test_a_wrong_key_an_error_and_no_server_are_named() -> None:
    with JudgeServer(key="right") as server:
        with (
            _judge(server.url, key="wrong") as judge,
            pytest.raises(UserError, match=r"refused the request \(401\)"),
        ):
            judge.score(EXAMPLE, "x", whose="candidate")
        server.mode = "error"
        with (
            _judge(server.url, key="right") as judge,
            pytest.raises(Unavailable, match=r"failed on eval.jsonl"),
        ):
            judge.score(EXAMPLE, "x", whose="candidate")
    with (
        _judge(f"http://127.0.0.1:{free_port()}/v1") as judge,
        pytest.raises(Unavailable, match="cannot be reached"),
    ):
        judge.score(EXAMPLE, "x", whose="candidate")


def test_a_judge_prompt_without_the_answer_or_with_unknown_variables_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"judge prompt judge@1 does not use \{\{output\}\}"):
        _judge("http://127.0.0.1:9/v1", template="Rate {{input}} from 0 to 10.")
    with pytest.raises(
        ValidationError, match=r"judge prompt judge@1 uses context, which the gate does not fill"
    ):
        _judge("http://127.0.0.1:9/v1", template="Given {{ context }}, rate {{output}}.")


def test_the_api_key_comes_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCKGATE_TEST_JUDGE_KEY", raising=False)
    assert judge_api_key(None) is None
    with pytest.raises(
        UserError, match="names the environment variable LOCKGATE_TEST_JUDGE_KEY, which is not set"
    ):
        judge_api_key("LOCKGATE_TEST_JUDGE_KEY")
    monkeypatch.setenv("LOCKGATE_TEST_JUDGE_KEY", "k")
    assert judge_api_key("LOCKGATE_TEST_JUDGE_KEY") == "k"
