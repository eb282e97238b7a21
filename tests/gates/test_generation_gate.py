"""``lockgate validate NAME@VERSION`` with a ``generation`` check on registered generative models: MLflow
``transformers`` models of the project's tiny GPT-2, downloaded and verified against their checksums,
answering an evaluation set through a registered prompt version, compared with the champion."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import lockgate
from lockgate.llm.answers import answer_all, load_generative
from lockgate.llm.tiny import build_tiny_model
from lockgate.prompts import register_prompt
from lockgate.tracking.connection import connect
from lockgate.tracking.registry import get_model_version, register

Cli = Callable[..., tuple[int, str, str]]
QUESTIONS = [
    "What is a canary?",
    "What is drift?",
    "Why roll back?",
    "What is a gate?",
    "What is a champion?",
]
TEMPLATE = "user: {{question}}\nassistant:"


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny models trained from different seeds: they answer differently."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = tmp_path_factory.mktemp("tiny-models")
    return build_tiny_model(root / "a", steps=8, seed=0), build_tiny_model(root / "b", steps=8, seed=1)


def _log_and_register(folder: Path, name: str, alias: str | None = None) -> str:
    import mlflow.transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    components = {
        "model": AutoModelForCausalLM.from_pretrained(folder),
        "tokenizer": AutoTokenizer.from_pretrained(folder),
    }
    with lockgate.track(run_name=name) as run:
        mlflow.transformers.log_model(
            components, name="model", task="text-generation", pip_requirements=["torch"]
        )
    return register(connect(), run.run_id, name, alias=alias).ref


@pytest.mark.integration
@pytest.mark.slow
def test_the_generation_gate_on_model_versions(
    mlflow_home: Path, unique: str, tmp_path: Path, cli: Cli, two_models: tuple[Path, Path]
) -> None:
    champion_folder, other_folder = two_models
    name, prompt = f"support-lm-{unique}", f"support-{unique}"
    _log_and_register(champion_folder, name, alias="champion")
    same = _log_and_register(champion_folder, name)
    other = _log_and_register(other_folder, name)
    register_prompt(connect(), prompt, TEMPLATE)
    answers = answer_all(
        load_generative(champion_folder), [f"user: {q}\nassistant:" for q in QUESTIONS], max_tokens=10, seed=0
    )
    other_answers = answer_all(
        load_generative(other_folder), [f"user: {q}\nassistant:" for q in QUESTIONS], max_tokens=10, seed=0
    )
    assert answers != other_answers  # else the test could not tell the models apart
    (tmp_path / "eval.jsonl").write_text(
        "\n".join(
            json.dumps({"variables": {"question": q}, "reference": a})
            for q, a in zip(QUESTIONS, answers, strict=True)
        )
        + "\n"
    )
    policy = tmp_path / "gate.yaml"
    settings = f"{{eval_set: eval.jsonl, prompt: '{prompt}@1', max_tokens: 10, resamples: 200}}"
    policy.write_text(f"checks:\n  generation: {settings}\n")

    code, out, err = cli("validate", same, "--policy", str(policy))
    assert code == 0, out + err
    assert "champion rouge_l (bootstrap)" in out and "PASS" in out
    assert get_model_version(connect(), same).tags["lockgate.gate.verdict"] == "pass"

    code, out, err = cli("validate", other, "--policy", str(policy))
    assert code == 1, out + err
    assert "failed: champion exact_match (bootstrap), champion rouge_l (bootstrap)" in out
