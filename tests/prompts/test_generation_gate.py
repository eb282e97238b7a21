"""``lockgate validate prompts:/...`` with a ``generation`` check, end to end: prompt versions from the
registry, the project's tiny model answering in this process, a real judge server on loopback, the
champion comparison by the paired tests, and the exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from lockgate.llm.answers import answer_all, load_generative
from lockgate.prompts import get_prompt, register_prompt
from lockgate.tracking.connection import connect
from tests.support import JUDGE_PROMPT, JudgeServer, start_server

Cli = Callable[..., tuple[int, str, str]]
QUESTIONS = [
    "What is a canary?",
    "How does a rollout end?",
    "What does the gate check?",
    "Why roll back?",
    "What is a champion?",
    "How are requests batched?",
]
CHAMPION = "user: {{question}}\nassistant:"
WORSE = "{{question}}"
KEY_ENV = "LOCKGATE_TEST_JUDGE_KEY"


def _policy(folder: Path, model: Path, judge_url: str, judge_prompt: str) -> Path:
    policy = folder / "gate.yaml"
    policy.write_text(
        f"""
version: 1
against: champion
seed: 0
checks:
  generation:
    eval_set: eval.jsonl
    model: {model}
    max_tokens: 12
    metrics: [exact_match, rouge_l, judge]
    judge: {{url: "{judge_url}", model: judge-lm, prompt: "{judge_prompt}", api_key_env: {KEY_ENV}}}
    thresholds: {{rouge_l: 0.5}}
    resamples: 300
""",
        encoding="utf-8",
    )
    return policy


def _eval_set(folder: Path, model: Path) -> list[dict[str, object]]:
    """The champion prompt's own answers as the references: the regression set of a support team."""
    answers = answer_all(
        load_generative(model), [f"user: {q}\nassistant:" for q in QUESTIONS], max_tokens=12, seed=0
    )
    lines: list[dict[str, object]] = [
        {"variables": {"question": q}, "reference": a} for q, a in zip(QUESTIONS, answers, strict=True)
    ]
    (folder / "eval.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return lines


@pytest.mark.integration
@pytest.mark.slow
def test_the_generation_gate_on_prompt_versions(
    mlflow_home: Path,
    unique: str,
    tmp_path: Path,
    cli: Cli,
    prompt_sensitive_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = connect()
    name, judge_name = f"support-{unique}", f"judge-{unique}"
    register_prompt(conn, name, CHAMPION, alias="champion")
    register_prompt(conn, name, WORSE, message="drops the chat framing")
    register_prompt(conn, name, CHAMPION, message="the same words again")
    register_prompt(conn, judge_name, JUDGE_PROMPT)
    lines = _eval_set(tmp_path, prompt_sensitive_model)
    monkeypatch.setenv(KEY_ENV, "s3cret")
    with JudgeServer(key="s3cret") as judge:
        policy = _policy(tmp_path, prompt_sensitive_model, judge.url, f"{judge_name}@1")

        code, out, err = cli("validate", f"prompts:/{name}/3", "--policy", str(policy))
        assert code == 0, out + err
        assert "generation judge" in out and "champion rouge_l (bootstrap)" in out and "PASS" in out
        assert get_prompt(conn, f"{name}@3").tags["lockgate.gate.verdict"] == "pass"
        # the judge saw each example's question, reference and answer, for both prompt versions
        assert len(judge.prompts) == 2 * len(QUESTIONS)
        assert f"<reference>{lines[0]['reference']}</reference>" in judge.prompts[0]

        code, out, err = cli("validate", f"prompts:/{name}/2", "--policy", str(policy), "--json", "r.json")
        assert code == 1, out + err
        report = json.loads((tmp_path / "r.json").read_text())
        failed = {c["name"] for c in report["checks"] if c["status"] == "failed"}
        assert {
            "champion exact_match (bootstrap)",
            "champion rouge_l (bootstrap)",
            "champion judge (bootstrap)",
        } <= failed
        assert get_prompt(conn, f"{name}@2").tags["lockgate.gate.verdict"] == "fail"

        judge.mode = "no-score"
        code, _, err = cli("validate", f"prompts:/{name}/3", "--policy", str(policy), "--no-record")
        assert code == 2, err
        assert (
            "the judge's reply for eval.jsonl line 1 (candidate) has no score: 'The answer is fine.'" in err
        )
        judge.mode = "ok"

        monkeypatch.delenv(KEY_ENV)
        code, _, err = cli("validate", f"prompts:/{name}/3", "--policy", str(policy), "--no-record")
        assert code == 2 and f"environment variable {KEY_ENV}, which is not set" in err
        monkeypatch.setenv(KEY_ENV, "s3cret")

        with (tmp_path / "eval.jsonl").open("a", encoding="utf-8") as file:
            file.write('{"variables": {"question": "broken"}, "reference": \n')
        code, _, err = cli("validate", f"prompts:/{name}/3", "--policy", str(policy), "--no-record")
        assert code == 2 and f"eval.jsonl line {len(QUESTIONS) + 1}: not valid JSON" in err


@pytest.mark.integration
def test_a_prompt_candidate_needs_a_model(mlflow_home: Path, unique: str, tmp_path: Path, cli: Cli) -> None:
    name = f"support-{unique}"
    register_prompt(connect(), name, CHAMPION)
    (tmp_path / "eval.jsonl").write_text('{"variables": {"question": "q"}, "reference": "a"}\n')
    policy = tmp_path / "gate.yaml"
    policy.write_text("checks:\n  generation: {eval_set: eval.jsonl}\n")
    code, _, err = cli("validate", f"prompts:/{name}/1", "--policy", str(policy))
    assert (
        code == 2 and "generation.model (or generation.endpoint) must name the model that answers it" in err
    )


@pytest.mark.integration
@pytest.mark.slow
def test_a_served_model_answers_the_prompt_versions(
    mlflow_home: Path, unique: str, tmp_path: Path, cli: Cli, prompt_sensitive_model: Path
) -> None:
    """The same model served by a real lockgate server gives the answers it gives in this process."""
    conn = connect()
    name = f"support-{unique}"
    register_prompt(conn, name, CHAMPION, alias="champion")
    register_prompt(conn, name, WORSE)
    register_prompt(conn, name, CHAMPION)
    _eval_set(tmp_path, prompt_sensitive_model)  # references: the in-process answers
    with start_server([str(prompt_sensitive_model), "--name", "support-lm"], token=None) as server:
        policy = tmp_path / "gate.yaml"
        endpoint = f'{{url: "{server.url}/v1", model: support-lm}}'
        settings = f"{{eval_set: eval.jsonl, endpoint: {endpoint}, max_tokens: 12, resamples: 200}}"
        policy.write_text(f"checks:\n  generation: {settings}\n")
        code, out, err = cli("validate", f"prompts:/{name}/3", "--policy", str(policy), "--json", "same.json")
        assert code == 0, out + err
        checks = {c["name"]: c for c in json.loads((tmp_path / "same.json").read_text())["checks"]}
        assert checks["generation exact_match"]["numbers"]["candidate"] == 1.0  # served == in-process
        code, out, err = cli("validate", f"prompts:/{name}/2", "--policy", str(policy))
        assert code == 1 and "champion exact_match (bootstrap)" in out, out + err
        bad = f'{{url: "{server.url}/v1", model: nope}}'
        policy.write_text(f"checks:\n  generation: {{eval_set: eval.jsonl, endpoint: {bad}}}\n")
        code, _, err = cli("validate", f"prompts:/{name}/3", "--policy", str(policy), "--no-record")
        assert code == 2 and "the model endpoint at" in err and "rejected eval.jsonl line 1" in err, err
