"""An LLM judge: any OpenAI-compatible endpoint asked to score an answer, with a judge prompt
versioned in lockgate's prompt registry.

The shell of the ``generation`` check's ``judge`` metric: it fills the judge prompt with the example
and the answer, asks the endpoint (:class:`~lockgate.gates.endpoint.ChatEndpoint`, temperature 0, the
policy's seed) and reads the score from the reply with
:func:`~lockgate.gates.generation.parse_judge_score`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from lockgate.errors import ValidationError
from lockgate.gates.endpoint import ChatEndpoint, endpoint_api_key
from lockgate.gates.generation import GenerationExample, parse_judge_score
from lockgate.gates.prompt import render, template_variables

if TYPE_CHECKING:
    from lockgate.gates.checks.generation import JudgeSpec

__all__ = ["Judge", "judge_api_key"]

_VARIABLES = ("input", "reference", "output")


def judge_api_key(env: str | None) -> str | None:
    """The judge's API key from ``judge.api_key_env``, checked before any example is answered."""
    return endpoint_api_key(env, "judge.api_key_env")


@dataclass
class Judge:
    """Scores answers with the model ``spec.model`` at ``spec.url``, using the judge prompt
    ``template`` (already loaded from the registry; ``prompt_ref`` names it in messages)."""

    spec: JudgeSpec
    template: str
    prompt_ref: str
    api_key: str | None = None
    seed: int = 0
    transport: httpx.BaseTransport | None = None
    _endpoint: ChatEndpoint = field(init=False, repr=False)

    def __post_init__(self) -> None:
        variables = template_variables(self.template)
        if "output" not in variables:
            raise ValidationError(
                f"the judge prompt {self.prompt_ref} does not use {{{{output}}}}, so the judge would "
                "never see the answer",
                hint="register a judge prompt that shows {{output}} (and {{input}}, {{reference}})",
            )
        unknown = sorted(variables - set(_VARIABLES))
        if unknown:
            raise ValidationError(
                f"the judge prompt {self.prompt_ref} uses {', '.join(unknown)}, which the gate does not fill",
                hint=f"a judge prompt may use {', '.join('{{' + v + '}}' for v in _VARIABLES)}",
            )
        self._endpoint = ChatEndpoint(
            self.spec, what="the judge", api_key=self.api_key, transport=self.transport
        )

    def close(self) -> None:
        self._endpoint.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def score(self, example: GenerationExample, output: str, *, whose: str) -> float:
        """The judge's score of ``output`` (``whose`` answer: candidate or champion), in [0, 1]."""
        values = {"input": example.text_for_judge(), "reference": example.reference, "output": output}
        where = f"{example.where} ({whose})"
        reply = self._endpoint.answer(
            render(self.template, values), where=where, max_tokens=self.spec.max_tokens, seed=self.seed
        )
        return parse_judge_score(reply, where=where, low=self.spec.min_score, high=self.spec.max_score)
