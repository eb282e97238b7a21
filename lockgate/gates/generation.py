"""Generative answers on an evaluation set: the examples, the reference metrics and the judge's score.

Pure but for reading the evaluation set: the answers (from a model, through a prompt version) and the
judge's replies are made by the shell (:mod:`lockgate.gates.generative`) and passed in as text. Each
metric is computed per example, so the candidate's and the champion's scores on the same examples
can be compared with the gate's paired tests (:mod:`lockgate.gates.comparison`).

- ``exact_match``: 1 when the answer equals the reference after collapsing whitespace and
  case-folding, else 0.
- ``rouge_l``: the ROUGE-L F-measure (longest common subsequence of words) of Google's
  ``rouge-score`` package, the implementation the ROUGE literature and Hugging Face's ``evaluate`` use.
- ``judge``: an LLM judge's score for the answer, read from its reply
  (:func:`parse_judge_score`) and scaled to [0, 1].
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from lockgate.errors import NotFound, ValidationError

__all__ = [
    "GENERATION_METRICS",
    "GenerationExample",
    "GenerationMetric",
    "GenerationOutputs",
    "exact_match",
    "load_generation_examples",
    "parse_judge_score",
    "reference_scores",
    "rouge_l",
]

GenerationMetric = Literal["exact_match", "rouge_l", "judge"]
GENERATION_METRICS: tuple[GenerationMetric, ...] = ("exact_match", "rouge_l", "judge")

_SHAPE = (
    'an example is {"input": "prompt text", "reference": "..."} or '
    '{"variables": {"name": "value"}, "reference": "..."}'
)


@dataclass(frozen=True)
class GenerationExample:
    """One line of the evaluation set: the model's input (a prompt, or a prompt version's variables),
    the reference answer, and where it came from (``eval.jsonl line 3``) for messages."""

    reference: str
    where: str
    input: str | None = None
    variables: Mapping[str, str] | None = None

    def text_for_judge(self) -> str:
        """What the judge is told the question was: the input, or the variables as ``name: value``."""
        if self.input is not None:
            return self.input
        return "\n".join(f"{k}: {v}" for k, v in (self.variables or {}).items())


@dataclass(frozen=True)
class GenerationOutputs:
    """The answers of the candidate and of the baseline (None when there is none) to ``examples``, in
    order, and the judge's scaled scores of each (None when the policy does not ask for the judge)."""

    examples: tuple[GenerationExample, ...]
    candidate: tuple[str, ...]
    baseline: tuple[str, ...] | None = None
    candidate_judge: tuple[float, ...] | None = None
    baseline_judge: tuple[float, ...] | None = None


def _example(doc: Any, where: str) -> GenerationExample:
    if not isinstance(doc, dict) or not isinstance(doc.get("reference"), str):
        raise ValidationError(f"{where}: {_SHAPE}", hint="give the right answer as a string under reference")
    text, variables = doc.get("input"), doc.get("variables")
    if (text is None) == (variables is None):
        raise ValidationError(
            f"{where}: give exactly one of input and variables; {_SHAPE}",
            hint="input for a model's prompt text, variables for a prompt version's template",
        )
    if text is not None and not isinstance(text, str):
        raise ValidationError(f"{where}: input must be a string", hint=_SHAPE)
    if variables is not None:
        if not isinstance(variables, dict) or not all(
            isinstance(v, str | int | float) for v in variables.values()
        ):
            raise ValidationError(f"{where}: variables must map names to strings", hint=_SHAPE)
        variables = {str(k): str(v) for k, v in variables.items()}
    return GenerationExample(doc["reference"], where, input=text, variables=variables)


def load_generation_examples(path: Path) -> tuple[GenerationExample, ...]:
    """JSON lines, each ``{"input": ..., "reference": ...}`` or ``{"variables": {...}, "reference":
    ...}``; a bad line is a :class:`ValidationError` naming the file and the line."""
    if not path.is_file():
        raise NotFound(
            f"evaluation set '{path}' does not exist", hint="fix `eval_set:` in the policy (relative to it)"
        )
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"{where}: not valid JSON: {exc.msg} (column {exc.colno})",
                hint="write one JSON object per line",
            ) from exc
        examples.append(_example(doc, where))
    if not examples:
        raise ValidationError(f"evaluation set '{path}' holds no examples", hint=_SHAPE)
    return tuple(examples)


# -- reference metrics ----------------------------------------------------------------------------
def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def exact_match(answer: str, reference: str) -> float:
    """1.0 when ``answer`` equals ``reference`` after collapsing whitespace and case-folding."""
    return float(_normal(answer) == _normal(reference))


@lru_cache(maxsize=1)
def _rouge() -> Any:
    import logging
    import sys

    from absl import logging as absl_logging
    from rouge_score import rouge_scorer

    # rouge-score logs through absl, whose handler holds the sys.stderr of the moment absl was
    # imported and closes it when logging is reconfigured (uvicorn's dictConfig) unless it is the
    # process's own: point it there, so a replaced stderr (a test's capture) is never closed
    absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__
    # and absl calls logging.basicConfig() when the root logger has no handler, which would bind
    # a handler to whatever sys.stderr is now and change the logging of the program lockgate is in
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    finally:
        root.removeHandler(guard)


def rouge_l(answer: str, reference: str) -> float:
    """The ROUGE-L F-measure of ``answer`` against ``reference`` (``rouge-score``), in [0, 1]."""
    return float(_rouge().score(reference, answer)["rougeL"].fmeasure)


def reference_scores(
    metric: Literal["exact_match", "rouge_l"], answers: Sequence[str], examples: Sequence[GenerationExample]
) -> tuple[float, ...]:
    """``metric`` of each answer against its example's reference, in order."""
    score = exact_match if metric == "exact_match" else rouge_l
    return tuple(score(answer, e.reference) for answer, e in zip(answers, examples, strict=True))


# -- the judge's reply ----------------------------------------------------------------------------
_SCORE_LABEL = re.compile(r"\bscore\b[^\w-]{0,5}(?:is[^\w-]{0,3})?(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER_ONLY = re.compile(r"^\W*(-?\d+(?:\.\d+)?)(?:\s*/\s*\d+(?:\.\d+)?)?\W*$")


def _json_score(reply: str) -> float | None:
    start, end = reply.find("{"), reply.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        doc = json.loads(reply[start : end + 1])
    except json.JSONDecodeError:
        return None
    value = doc.get("score") if isinstance(doc, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def parse_judge_score(reply: str, *, where: str, low: float, high: float) -> float:
    """The judge's score in ``reply`` scaled to [0, 1]: a JSON object's ``"score"``, else the number
    after the word "score" (``Score: 7``, ``**Score**: 7/10``), else a reply that is only a number.

    A reply with no score, or one outside [``low``, ``high``], is a :class:`ValidationError` naming the
    example (``where``) and quoting the reply: the judge prompt or the judge model needs fixing.
    """
    found = _json_score(reply)
    if found is None:
        match = _SCORE_LABEL.search(reply) or _NUMBER_ONLY.match(reply)
        found = float(match.group(1)) if match else None
    quoted = reply.strip()[:200]
    if found is None or not math.isfinite(found):
        raise ValidationError(
            f"the judge's reply for {where} has no score: {quoted!r}",
            hint="make the judge prompt ask for a last line 'Score: N' (or JSON {\"score\": N}); "
            "register it as a new version and name it under judge.prompt",
        )
    if not low <= found <= high:
        raise ValidationError(
            f"the judge's score for {where} is {found:g}, outside judge.min_score..max_score "
            f"({low:g}..{high:g}): {quoted!r}",
            hint="make the judge prompt's scale and judge.min_score / max_score agree",
        )
    return (found - low) / (high - low)
