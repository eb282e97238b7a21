"""Prompt versions on MLflow's prompt registry through the CLI, and the prompt gate end to end."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from lockgate.errors import UserError
from lockgate.prompts import get_prompt, parse_prompt_ref
from lockgate.prompts.registry import PromptRef
from lockgate.tracking.connection import connect

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prompts"
Cli = Callable[..., tuple[int, str, str]]


def test_prompt_references_parse() -> None:
    assert parse_prompt_ref("prompts:/faq/3") == PromptRef("faq", version=3)
    assert parse_prompt_ref("faq@champion") == PromptRef("faq", alias="champion")
    assert parse_prompt_ref("prompts:/faq@2") == PromptRef("faq", version=2)
    assert parse_prompt_ref("faq", default_alias="champion").uri == "prompts:/faq@champion"
    with pytest.raises(UserError, match="is not a prompt reference"):
        parse_prompt_ref("faq")


@pytest.mark.integration
def test_register_list_show_diff_and_alias(mlflow_home: Path, unique: str, cli: Cli) -> None:
    name = f"faq-{unique}"
    code, out, err = cli(
        "prompts", "register", name, "--template", "Answer: {{question}}", "--alias", "champion"
    )
    assert code == 0, err
    assert f"registered prompt {name}@1 (variables: question, aliases champion)" in out
    code, out, _ = cli(
        "prompts", "register", name, "--template", "Answer briefly.\n{{question}}", "-m", "shorter"
    )
    assert code == 0 and f"{name}@2" in out
    code, out, _ = cli("prompts", "list", name)
    assert code == 0 and "shorter" in out and "champion" in out
    code, out, _ = cli("prompts", "list")
    assert code == 0 and name in out
    code, out, _ = cli("prompts", "show", f"{name}@champion")
    assert code == 0 and f"prompt {name}@1" in out and "Answer: {{question}}" in out
    code, out, _ = cli("prompts", "diff", f"{name}@champion", f"{name}@2")
    assert code == 0 and "-Answer: {{question}}" in out and "+Answer briefly." in out
    code, out, _ = cli("prompts", "alias", name, "champion", "2")
    assert code == 0 and get_prompt(connect(), f"{name}@champion").version == 2
    code, _, err = cli("prompts", "show", f"{name}@7")
    assert code == 2 and f"prompt '{name}' has no version 7" in err and "its versions are 2, 1" in err
    code, _, err = cli("prompts", "show", f"nope-{unique}@1")
    assert code == 2 and "there is no prompt" in err


@pytest.mark.integration
@pytest.mark.slow
def test_the_prompt_gate_passes_a_better_prompt_and_fails_a_worse_one(
    mlflow_home: Path, unique: str, tmp_path: Path, cli: Cli, minilm: object
) -> None:
    name = f"support-{unique}"
    folder = tmp_path / "prompts"
    shutil.copytree(EXAMPLE, folder)
    policy = folder / "prompt-gate.yaml"
    assert (
        cli("prompts", "register", name, "--file", str(folder / "champion.txt"), "--alias", "champion")[0]
        == 0
    )
    assert cli("prompts", "register", name, "--file", str(folder / "challenger.txt"))[0] == 0

    code, out, err = cli("validate", f"prompts:/{name}/2", "--policy", str(policy))
    assert code == 0, out + err
    assert "prompt similarity match" in out and "PASS" in out
    assert get_prompt(connect(), f"{name}@2").tags["lockgate.gate.verdict"] == "pass"

    code, out, err = cli("validate", f"prompts:/{name}/1", "--policy", str(policy), "--against", f"{name}@2")
    assert code == 1, out + err
    assert "failed: prompt similarity match" in out

    code, _, err = cli(
        "validate", f"prompts:/{name}/2", "--policy", str(EXAMPLE.parent / "breast_cancer" / "lockgate.yaml")
    )
    assert code == 2 and "a prompt is validated by `prompt:` and `generation:` checks only" in err
