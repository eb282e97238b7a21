"""An LLM judge: any OpenAI-compatible endpoint asked to score an answer, with a judge prompt
versioned in lockgate's prompt registry.

The shell of the ``generation`` check's ``judge`` metric: it fills the judge prompt with the example
and the answer, sends one ``POST {url}/chat/completions`` (temperature 0, the policy's seed) and reads
the score from the reply with :func:`~lockgate.gates.generation.parse_judge_score`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from lockgate.errors import Unavailable, UserError, ValidationError
from lockgate.gates.generation import GenerationExample, parse_judge_score
from lockgate.gates.prompt import render

if TYPE_CHECKING:
    from lockgate.gates.checks.generation import JudgeSpec

__all__ = ["Judge", "judge_api_key"]

_VARIABLES = ("input", "reference", "output")


def judge_api_key(env: str | None) -> str | None:
    """The API key in environment variable ``env`` (None when no variable is named); a variable that
    is named but not set is a :class:`UserError`, before any example is answered."""
    if env is None:
        return None
    key = os.environ.get(env, "")
    if not key:
        raise UserError(
            f"judge.api_key_env names the environment variable {env}, which is not set",
            hint=f"export {env}=<the judge endpoint's API key>, or remove api_key_env for an endpoint "
            "that needs none",
        )
    return key


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

    def __post_init__(self) -> None:
        if "{{output}}" not in self.template.replace(" ", ""):
            raise ValidationError(
                f"the judge prompt {self.prompt_ref} does not use {{{{output}}}}, so the judge would "
                "never see the answer",
                hint="register a judge prompt that shows {{output}} (and {{input}}, {{reference}})",
            )
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.Client(
            base_url=self.spec.url, headers=headers, timeout=self.spec.timeout_s, transport=self.transport
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def score(self, example: GenerationExample, output: str, *, whose: str) -> float:
        """The judge's score of ``output`` (``whose`` answer: candidate or champion), in [0, 1]."""
        values = {"input": example.text_for_judge(), "reference": example.reference, "output": output}
        prompt = render(self.template, values)
        reply = self._ask(prompt, f"{example.where} ({whose})")
        return parse_judge_score(
            reply, where=f"{example.where} ({whose})", low=self.spec.min_score, high=self.spec.max_score
        )

    def _ask(self, prompt: str, where: str) -> str:
        body = {
            "model": self.spec.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": self.spec.max_tokens,
            "seed": self.seed,
        }
        url = f"{self.spec.url}/chat/completions"
        try:
            response = self._client.post("/chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise Unavailable(
                f"the judge at {url} did not answer {where} within {self.spec.timeout_s:g} s",
                hint="raise judge.timeout_s or check the endpoint",
            ) from exc
        except httpx.TransportError as exc:
            raise Unavailable(
                f"the judge at {url} cannot be reached: {exc}", hint="start the endpoint or fix judge.url"
            ) from exc
        if response.status_code in (401, 403):
            raise UserError(
                f"the judge at {url} refused the request ({response.status_code}): {response.text[:200]}",
                hint="set judge.api_key_env to the variable holding a valid API key",
            )
        if response.status_code >= 500:
            raise Unavailable(
                f"the judge at {url} failed on {where} ({response.status_code}): {response.text[:200]}",
                hint="retry later, or check the endpoint's log",
            )
        if response.status_code >= 400:
            raise UserError(
                f"the judge at {url} rejected {where} ({response.status_code}): {response.text[:200]}",
                hint="check judge.model and judge.max_tokens against the endpoint",
            )
        return _reply_text(response, url, where)


def _reply_text(response: httpx.Response, url: str, where: str) -> str:
    try:
        doc: Any = response.json()
        content = doc["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise UserError(
            f"the judge at {url} answered {where} with no chat completion: {response.text[:200]!r}",
            hint="judge.url must be an OpenAI-compatible base URL (ending in /v1)",
        ) from exc
    if not isinstance(content, str):
        raise UserError(f"the judge at {url} answered {where} with no text", hint="check judge.model")
    return content
