"""The prompt gate's shell: load the prompt versions, the examples and the responder; run the checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.errors import NotFound, ValidationError
from lockgate.gates.kinds import GateInputs, run_check
from lockgate.gates.policy import Policy
from lockgate.gates.result import CheckResult, GateReport, check_skipped
from lockgate.prompts.registry import (
    PromptRef,
    PromptVersionInfo,
    get_prompt,
    parse_prompt_ref,
    tag_prompt_version,
)
from lockgate.tracking.connection import Connection

if TYPE_CHECKING:
    from lockgate.gates.generation import GenerationOutputs

__all__ = ["find_baseline_prompt", "record_prompt_report", "validate_prompt"]

_PROMPT_KINDS = ("prompt", "generation")

TAG_VERDICT = "lockgate.gate.verdict"
TAG_POLICY_SHA256 = "lockgate.gate.policy_sha256"


def find_baseline_prompt(
    conn: Connection, candidate: PromptVersionInfo, against: str | None
) -> tuple[PromptVersionInfo | None, str | None]:
    """The prompt version to compare with, and how to name it; an alias that is not set means none."""
    if against is None or against.lower() == "none":
        return None, None
    ref = (
        parse_prompt_ref(against)
        if ("@" in against or ":/" in against)
        else PromptRef(candidate.name, alias=against)
    )
    try:
        return get_prompt(conn, ref), str(ref)
    except NotFound:
        if ref.alias is None:
            raise
        return None, f"{ref} is not set"


def validate_prompt(
    conn: Connection,
    prompt: str,
    policy: Policy,
    *,
    against: str | None = None,
    base_dir: Path = Path(),
    generation: GenerationOutputs | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> GateReport:
    """Run the policy's ``prompt`` and ``generation`` checks on ``prompt`` (``prompts:/NAME/VERSION``
    or ``NAME@VERSION``) against the ``against`` prompt version (default: the policy's, ``champion``).

    ``generation``: both prompt versions' answers for the ``generation`` check, gathered by the shell
    that runs the model (:func:`lockgate.llm.gate.validate_generation`, which calls this).
    """
    from lockgate.gates.prompt import load_prompt_examples
    from lockgate.prompts.responders import load_responder

    others = [kind.name for kind, _ in policy.checks if kind.name not in _PROMPT_KINDS]
    if others:
        raise ValidationError(
            f"{policy.source}: a prompt is validated by `prompt:` and `generation:` checks only, and "
            f"the policy also has {', '.join(others)}",
            hint="keep the prompt's gate in its own policy file",
        )
    started, started_ms = clock(), int(time.time() * 1000)
    candidate = get_prompt(conn, parse_prompt_ref(prompt))
    baseline, baseline_ref = find_baseline_prompt(
        conn, candidate, against if against is not None else policy.settings.against
    )
    results: list[CheckResult] = []
    for kind, spec in policy.checks:
        if kind.name == "generation":
            inputs = GateInputs(seed=policy.settings.seed, baseline_ref=baseline_ref, generation=generation)
            results.extend(run_check(kind, spec, inputs))
            continue
        path = Path(spec.examples)
        embed = None
        if spec.scoring == "similarity":
            from lockgate.gates.encoder import minilm_encoder

            embed = minilm_encoder
        inputs = GateInputs(
            seed=policy.settings.seed,
            prompt_template=candidate.template,
            baseline_prompt_template=baseline.template if baseline is not None else None,
            prompt_examples=load_prompt_examples(path if path.is_absolute() else base_dir / path),
            respond=load_responder(spec.responder),
            embed=embed,
        )
        results.extend(run_check(kind, spec, inputs))
    if baseline is None and "prompt" in policy.kinds:
        results.append(
            check_skipped("prompt champion", f"no champion prompt to compare with ({baseline_ref or 'none'})")
        )
    return GateReport(
        model=f"prompts:/{candidate.name}/{candidate.version}",
        baseline=f"prompts:/{baseline.name}/{baseline.version}" if baseline is not None else baseline_ref,
        policy_sha256=policy.sha256,
        results=tuple(results),
        started_ms=started_ms,
        duration_s=clock() - started,
        seed=policy.settings.seed,
    )


def record_prompt_report(conn: Connection, report: GateReport) -> None:
    """Tag the prompt version with the verdict and the policy's digest."""
    version = get_prompt(conn, parse_prompt_ref(report.model))
    tag_prompt_version(conn, version, TAG_VERDICT, report.verdict)
    tag_prompt_version(conn, version, TAG_POLICY_SHA256, report.policy_sha256)
