"""The offline gate for generative models and prompt versions: the shell that runs them.

``lockgate validate`` comes here when the policy has a ``generation`` check. The candidate and the
champion are generative model versions (registered models, downloaded and verified against their
checksums, loaded in this process) or prompt versions (rendered with each example's variables and
answered by the one model ``generation.model`` names). Both answer the evaluation set greedily with the
policy's seed; the judge, when the policy asks for it, scores every answer. The answers then go to the
model gate (:func:`lockgate.gates.gate.validate`) or the prompt gate
(:func:`lockgate.prompts.gate.validate_prompt`), whose ``generation`` check kind
(:mod:`lockgate.gates.checks.generation`) scores them per example and compares them with the paired tests.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.errors import UserError, ValidationError
from lockgate.gates.checks.generation import GenerationSpec
from lockgate.gates.generation import GenerationExample, GenerationOutputs, load_generation_examples
from lockgate.gates.kinds import CHECK_KINDS
from lockgate.gates.policy import Policy
from lockgate.gates.prompt import render
from lockgate.gates.result import GateReport
from lockgate.tracking.connection import Connection

if TYPE_CHECKING:
    from lockgate.gates.endpoint import ChatEndpoint
    from lockgate.gates.judge import Judge
    from lockgate.llm.answers import Generative

__all__ = [
    "Answerer",
    "answerer",
    "endpoint_answerer",
    "gather_outputs",
    "load_judge",
    "load_model",
    "validate_generation",
]

# A candidate or a champion: the answer to each example, in order.
Answerer = Callable[[Sequence[GenerationExample]], list[str]]


def validate_generation(
    conn: Connection,
    candidate: str,
    policy: Policy,
    *,
    against: str | None = None,
    base_dir: Path = Path(),
    data_root: Path | None = None,
) -> GateReport:
    """Gather the ``generation`` check's answers for ``candidate`` (``prompts:/NAME/VERSION`` or a
    model version) and its baseline, then run every check of ``policy`` on them."""
    spec: GenerationSpec = dict(policy.checks)[CHECK_KINDS["generation"]]
    baseline_ref = against if against is not None else policy.settings.against
    examples = _examples(spec, base_dir)
    seed = policy.settings.seed
    with ExitStack() as stack:
        judge = load_judge(conn, spec, seed)  # its key and prompt are checked before any answer is made
        if judge is not None:
            stack.callback(judge.close)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="lockgate-gate-"))
        at = _Answering(conn, spec, seed, base_dir, Path(tmp), judge)
        if candidate.startswith("prompts:/"):
            from lockgate.prompts.gate import validate_prompt

            endpoint = _endpoint(spec)
            if endpoint is not None:
                stack.callback(endpoint.close)
            outputs = _prompt_outputs(at, candidate, baseline_ref, endpoint)
            return validate_prompt(
                conn, candidate, policy, against=against, base_dir=base_dir, generation=outputs(examples)
            )
        from lockgate.gates.gate import validate

        outputs = _model_outputs(at, candidate, baseline_ref)
        return validate(
            conn, candidate, policy, against=against, data_root=data_root, generation=outputs(examples)
        )


def _examples(spec: GenerationSpec, base_dir: Path) -> tuple[GenerationExample, ...]:
    path = Path(spec.eval_set)
    return load_generation_examples(path if path.is_absolute() else base_dir / path)


@dataclass(frozen=True)
class _Answering:
    """What answering a candidate and its baseline needs: the registry, the check's settings, the
    seed, the policy's folder, a temporary folder for downloads, and the judge (if any)."""

    conn: Connection
    spec: GenerationSpec
    seed: int
    base_dir: Path
    folder: Path
    judge: Judge | None


def _prompt_outputs(
    at: _Answering, candidate_ref: str, against: str | None, endpoint: ChatEndpoint | None
) -> Callable[[Sequence[GenerationExample]], GenerationOutputs]:
    """Both prompt versions answered by the one model ``generation.model`` names (loaded here) or
    ``generation.endpoint`` serves."""
    conn, spec, seed, judge = at.conn, at.spec, at.seed, at.judge
    from lockgate.prompts.gate import find_baseline_prompt
    from lockgate.prompts.registry import get_prompt, parse_prompt_ref

    candidate = get_prompt(conn, parse_prompt_ref(candidate_ref))
    baseline, _ = find_baseline_prompt(conn, candidate, against)
    make: Callable[[str, str], Answerer]
    if endpoint is not None:
        served = endpoint

        def make(template: str, what: str) -> Answerer:
            return endpoint_answerer(served, spec, template=template, what=what, seed=seed)

    elif spec.model is not None:
        model = load_model(conn, spec.model, at.folder, at.base_dir)

        def make(template: str, what: str) -> Answerer:
            return answerer(model, spec, template=template, what=what, seed=seed)

    else:
        raise ValidationError(
            f"{candidate.ref} is a prompt: generation.model (or generation.endpoint) must name the model "
            "that answers it",
            hint="add e.g. `model: support-lm@champion` (a registered model) or a model folder, or "
            "`endpoint: {url: ..., model: ...}` for a served one",
        )
    run_candidate = make(candidate.template, candidate.ref)
    run_baseline = make(baseline.template, baseline.ref) if baseline is not None else None
    return lambda examples: gather_outputs(examples, run_candidate, run_baseline, judge)


def _endpoint(spec: GenerationSpec) -> ChatEndpoint | None:
    """The served model that answers prompt versions, when the policy names one (its key checked)."""
    if spec.endpoint is None:
        return None
    from lockgate.gates.endpoint import ChatEndpoint, endpoint_api_key

    api_key = endpoint_api_key(spec.endpoint.api_key_env, "endpoint.api_key_env")
    return ChatEndpoint(spec.endpoint, what="the model endpoint", api_key=api_key)


def endpoint_answerer(
    endpoint: ChatEndpoint, spec: GenerationSpec, *, template: str, what: str, seed: int
) -> Answerer:
    """A served model answering each example with ``template`` filled (one request per example:
    ``/completions``, or ``/chat/completions`` with ``chat: true``)."""

    def answer(examples: Sequence[GenerationExample]) -> list[str]:
        return [
            endpoint.answer(
                _prompt_text(example, template, what),
                where=f"{example.where} ({what})",
                max_tokens=spec.max_tokens,
                seed=seed,
                stop=spec.stop,
                is_chat=spec.chat,
            )
            for example in examples
        ]

    return answer


def _model_outputs(
    at: _Answering, candidate_ref: str, against: str | None
) -> Callable[[Sequence[GenerationExample]], GenerationOutputs]:
    """Both model versions, each answering through ``generation.prompt`` when it names one."""
    conn, spec, seed, folder, judge = at.conn, at.spec, at.seed, at.folder, at.judge
    from lockgate.gates.gate import download_verified, find_baseline, parse_model_uri
    from lockgate.llm.answers import load_generative
    from lockgate.prompts.registry import get_prompt, parse_prompt_ref
    from lockgate.tracking.registry import get_model_version

    candidate = get_model_version(conn, parse_model_uri(candidate_ref))
    baseline, _ = find_baseline(conn, candidate, against)
    template = get_prompt(conn, parse_prompt_ref(spec.prompt)).template if spec.prompt else None
    model = load_generative(download_verified(candidate, folder))
    run_candidate = answerer(model, spec, template=template, what=candidate.ref, seed=seed)
    run_baseline = None
    if baseline is not None:
        other = (
            model if baseline.ref == candidate.ref else load_generative(download_verified(baseline, folder))
        )
        run_baseline = answerer(other, spec, template=template, what=baseline.ref, seed=seed)
    return lambda examples: gather_outputs(examples, run_candidate, run_baseline, judge)


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
    environment, or None when ``judge`` is not a metric."""
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
    if judge is not None:
        candidate_judge = tuple(
            judge.score(e, a, whose="candidate") for e, a in zip(examples, candidate_answers, strict=True)
        )
        if baseline_answers is not None:
            baseline_judge = tuple(
                judge.score(e, a, whose="champion") for e, a in zip(examples, baseline_answers, strict=True)
            )
    return GenerationOutputs(
        tuple(examples), candidate_answers, baseline_answers, candidate_judge, baseline_judge
    )
