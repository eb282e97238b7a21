"""The ``generation`` check's shell: load the generative models, answer the evaluation set through
them (with prompt versions where there are some), and ask the judge; the check kind
(:mod:`lockgate.gates.checks.generation`) then scores and compares the answers.

Used by the model gate (:func:`lockgate.gates.gate.validate`: the candidate and the champion are model
versions) and by the prompt gate (:func:`lockgate.prompts.gate.validate_prompt`: they are prompt
versions, run through the one model ``generation.model`` names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.errors import UserError, ValidationError
from lockgate.gates.generation import GenerationExample, GenerationOutputs, load_generation_examples
from lockgate.gates.prompt import render
from lockgate.tracking.connection import Connection

if TYPE_CHECKING:
    from lockgate.gates.checks.generation import GenerationSpec
    from lockgate.gates.judge import Judge
    from lockgate.llm.answers import Generative

__all__ = ["Answerer", "answerer", "examples_for", "gather_outputs", "load_judge", "load_model"]

# A candidate or a champion: the answer to each example, in order.
Answerer = Callable[[Sequence[GenerationExample]], list[str]]


def examples_for(spec: GenerationSpec, base_dir: Path) -> tuple[GenerationExample, ...]:
    """The evaluation set ``spec.eval_set`` names, relative to the policy's folder."""
    path = Path(spec.eval_set)
    return load_generation_examples(path if path.is_absolute() else base_dir / path)


def load_model(conn: Connection, ref: str, folder: Path, base_dir: Path) -> Generative:
    """The generative model ``ref`` names: a local folder (relative to the policy's folder) when one
    exists, else a registered model version, downloaded and verified against its checksum."""
    from lockgate.gates.gate import download_verified, parse_model_uri
    from lockgate.llm.answers import load_generative
    from lockgate.tracking.registry import get_model_version

    local = Path(ref) if Path(ref).is_absolute() else base_dir / ref
    if local.is_dir():
        return load_generative(local)
    version = get_model_version(conn, parse_model_uri(ref))
    return load_generative(download_verified(version, folder))


def _prompt_text(example: GenerationExample, template: str | None, what: str) -> str:
    if template is None:
        if example.input is None:
            raise ValidationError(
                f"{example.where}: the example gives variables, and {what} has no prompt to fill",
                hint="name a prompt version under generation.prompt, or give the example an input",
            )
        return example.input
    values: Mapping[str, str] = (
        example.variables if example.variables is not None else {"input": example.input or ""}
    )
    try:
        return render(template, values)
    except ValidationError as exc:
        raise ValidationError(f"{example.where}: {exc.message}", hint=exc.hint) from exc


def answerer(
    model: Generative, spec: GenerationSpec, *, template: str | None, what: str, seed: int
) -> Answerer:
    """``model`` answering each example: its ``input``, or ``template`` filled with its variables (an
    example with only an ``input`` fills ``{{input}}``); greedy, seeded."""
    from lockgate.llm.answers import answer_all

    def answer(examples: Sequence[GenerationExample]) -> list[str]:
        prompts = [_prompt_text(example, template, what) for example in examples]
        return answer_all(
            model,
            prompts,
            max_tokens=spec.max_tokens,
            seed=seed,
            stop=spec.stop,
            is_chat=spec.chat,
            names=[example.where for example in examples],
        )

    return answer


def load_judge(conn: Connection, spec: GenerationSpec, seed: int) -> Judge | None:
    """The judge the policy names, with its prompt from the registry and its API key from the
    environment (checked before any example is answered), or None when ``judge`` is not a metric."""
    if "judge" not in spec.metrics or spec.judge is None:
        return None
    try:
        from lockgate.gates.judge import Judge, judge_api_key
    except ImportError as exc:  # httpx is in the serve and llm extras
        raise UserError("the LLM judge needs httpx", hint="pip install 'lockgate[llm]'") from exc
    from lockgate.prompts.registry import get_prompt, parse_prompt_ref

    api_key = judge_api_key(spec.judge.api_key_env)
    prompt = get_prompt(conn, parse_prompt_ref(spec.judge.prompt))
    return Judge(spec.judge, prompt.template, prompt.ref, api_key=api_key, seed=seed)


def gather_outputs(
    examples: Sequence[GenerationExample],
    candidate: Answerer,
    baseline: Answerer | None,
    judge: Judge | None,
) -> GenerationOutputs:
    """Both answerers' answers to ``examples`` and, with a judge, its score of every answer."""
    candidate_answers = tuple(candidate(examples))
    baseline_answers = tuple(baseline(examples)) if baseline is not None else None
    candidate_judge = baseline_judge = None
    with ExitStack() as stack:
        if judge is not None:
            stack.callback(judge.close)
            candidate_judge = tuple(
                judge.score(e, a, whose="candidate") for e, a in zip(examples, candidate_answers, strict=True)
            )
            if baseline_answers is not None:
                baseline_judge = tuple(
                    judge.score(e, a, whose="champion")
                    for e, a in zip(examples, baseline_answers, strict=True)
                )
    return GenerationOutputs(
        tuple(examples), candidate_answers, baseline_answers, candidate_judge, baseline_judge
    )
