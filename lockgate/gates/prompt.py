"""Prompt versions on an evaluation set: fill the template, ask the responder, score the answers.

Pure: the responder (the LLM call) and the embedder are functions passed in. A response scores 1 when it
matches the expected answer exactly (after trimming and case-folding) or, with ``similarity``, when
the cosine similarity of their embeddings is at least ``min_similarity``; the prompt's score is the
share of examples it gets right.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import NotFound, ValidationError

__all__ = [
    "PromptExample",
    "PromptScore",
    "Responder",
    "load_prompt_examples",
    "render",
    "score_prompt",
    "template_variables",
]

Responder = Callable[[str], str]
Embedder = Callable[[Sequence[str]], npt.NDArray[Any]]
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")


@dataclass(frozen=True)
class PromptExample:
    """The template's variables for one example, and the answer expected."""

    inputs: Mapping[str, str]
    expected: str


@dataclass(frozen=True)
class PromptScore:
    """Per-example hits (0/1) and similarities (None for exact matching), and the share of hits."""

    hits: tuple[int, ...]
    similarities: tuple[float, ...] | None

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.hits)) if self.hits else float("nan")

    @property
    def mean_similarity(self) -> float | None:
        return float(np.mean(self.similarities)) if self.similarities else None


def load_prompt_examples(path: Path) -> tuple[PromptExample, ...]:
    """JSON lines, each ``{"inputs": {"question": ...}, "expected": "..."}``."""
    if not path.is_file():
        raise NotFound(f"prompt examples file '{path}' does not exist", hint="fix `examples:` in the policy")
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path.name} line {number}: not valid JSON: {exc.msg}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), dict) or "expected" not in doc:
            raise ValidationError(
                f'{path.name} line {number}: an example is {{"inputs": {{...}}, "expected": "..."}}',
                hint="give the template's variables under inputs and the right answer as expected",
            )
        out.append(PromptExample({str(k): str(v) for k, v in doc["inputs"].items()}, str(doc["expected"])))
    if not out:
        raise ValidationError(f"prompt examples file '{path}' holds no examples")
    return tuple(out)


def template_variables(template: str) -> frozenset[str]:
    """The names of the ``{{variable}}`` placeholders in ``template``."""
    return frozenset(m.group(1) for m in _VARIABLE.finditer(template))


def render(template: str, inputs: Mapping[str, str]) -> str:
    """Fill ``{{variable}}`` placeholders (MLflow's prompt syntax); a missing variable is an error."""
    missing = sorted(template_variables(template) - set(inputs))
    if missing:
        raise ValidationError(
            f"the prompt needs {', '.join(missing)}, which the example does not give",
            hint="add them under each example's inputs",
        )
    return _VARIABLE.sub(lambda m: inputs[m.group(1)], template)


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def score_prompt(
    template: str,
    examples: Sequence[PromptExample],
    respond: Responder,
    *,
    embed: Embedder | None = None,
    min_similarity: float = 0.8,
) -> PromptScore:
    """Score ``template`` on ``examples``: exact matching without ``embed``, similarity with it."""
    responses = [str(respond(render(template, e.inputs))) for e in examples]
    expected = [e.expected for e in examples]
    if embed is None:
        return PromptScore(
            tuple(int(_normal(r) == _normal(x)) for r, x in zip(responses, expected, strict=True)), None
        )
    got = np.asarray(embed(responses), dtype=np.float64)
    want = np.asarray(embed(expected), dtype=np.float64)
    got /= np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
    want /= np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-12)
    similarities = tuple(float(s) for s in np.sum(got * want, axis=1))
    return PromptScore(tuple(int(s >= min_similarity) for s in similarities), similarities)
