"""``prompt:``: a prompt version's hit rate on an evaluation set, against the champion prompt's."""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import Field, field_validator

from lockgate.gates.checks.task import task_metric
from lockgate.gates.kinds import CheckKind, GateInputs, Spec, register_check_kind
from lockgate.gates.prompt import score_prompt
from lockgate.gates.result import CheckResult, check_failed

__all__ = [
    "KIND",
    "PromptSpec",
]


class PromptSpec(Spec):
    """A prompt version on an evaluation set against the champion prompt.

    ``examples``: a JSON-lines file (relative to the policy file). ``responder``: the model call, a
    Python entry ``module:function`` taking the filled prompt and returning the answer; the default
    echoes the filled prompt (offline, deterministic). ``scoring``: ``exact`` or ``similarity``
    (cosine of the bundled MiniLM's embeddings, a hit at ``min_similarity`` or above).
    """

    examples: str
    responder: str = "lockgate.prompts.responders:echo"
    scoring: Literal["exact", "similarity"] = "exact"
    min_similarity: float = Field(default=0.8, gt=0, le=1)
    threshold: float | None = Field(default=None, ge=0, le=1)
    margin: float = Field(default=0.0, ge=0, le=1)

    @field_validator("responder")
    @classmethod
    def _entry(cls, value: str) -> str:
        module, colon, function = value.partition(":")
        if not colon or not module or not function.isidentifier():
            raise ValueError(f"'{value}' is not a Python entry; write module.path:function")
        return value


def _run_prompt(spec: PromptSpec, inputs: GateInputs) -> list[CheckResult]:
    name = f"prompt {spec.scoring} match"
    if inputs.prompt_template is None or inputs.respond is None:
        return [check_failed(name, "no prompt version to evaluate (validate prompts:/NAME/VERSION)")]
    if spec.scoring == "similarity" and inputs.embed is None:
        return [check_failed(name, "similarity scoring needs an embedder (pip install 'lockgate[text]')")]
    embed = inputs.embed if spec.scoring == "similarity" else None
    respond = inputs.respond

    def scored(template: str) -> tuple[float, float | None]:
        result = score_prompt(
            template, inputs.prompt_examples, respond, embed=embed, min_similarity=spec.min_similarity
        )
        return result.accuracy, result.mean_similarity

    candidate, similarity = scored(inputs.prompt_template)
    baseline = None
    if inputs.baseline_prompt_template is not None:
        baseline, _ = scored(inputs.baseline_prompt_template)
    result = task_metric(
        name,
        "hit rate",
        candidate,
        baseline,
        threshold=spec.threshold,
        margin=spec.margin,
        n=len(inputs.prompt_examples),
    )
    if similarity is None:
        return [result]
    return [dataclasses.replace(result, numbers={**result.numbers, "mean_similarity": similarity})]


KIND = register_check_kind(CheckKind("prompt", PromptSpec, frozenset({"prompt"}), _run_prompt))
