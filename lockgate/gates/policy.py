"""``lockgate.yaml``: the gate's policy, parsed once into typed objects.

Every mistake is reported with the file, the line and the key, e.g.
``lockgate.yaml line 12: checks.metrics[0].min_delta: is not a known key (known: metric, threshold, ...)``,
as a :class:`~lockgate.errors.ValidationError` (exit code 2). Line numbers come from the YAML node tree
(``yaml.compose``), which keeps where each key and value began.
"""

from __future__ import annotations

import hashlib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, Field

from lockgate.errors import NotFound, UserError, ValidationError
from lockgate.gates.kinds import CHECK_KINDS, Check, Need
from lockgate.gates.metrics import METRICS
from lockgate.gates.specs import Spec
from lockgate.tracking.refs import parse_ref

__all__ = ["HoldoutSpec", "Policy", "PolicyFile", "load_policy", "parse_policy"]

Loc = tuple[str | int, ...]


class HoldoutSpec(Spec):
    """The dataset version the models are scored on, and the column holding the truth."""

    dataset: str
    target: str
    file: str | None = None


class PolicyFile(Spec):
    """The top level of ``lockgate.yaml``; ``checks`` is validated kind by kind."""

    version: Literal[1] = 1
    holdout: HoldoutSpec | None = None
    reference: str | None = None
    against: str | None = "champion"
    task: Literal["classification", "regression"] = "classification"
    decision_threshold: float = Field(default=0.5, ge=0, le=1)
    seed: int = 0
    checks: dict[str, Any]


@dataclass(frozen=True)
class Policy:
    """A validated policy: the settings, each enabled check kind with its settings, and the file's digest."""

    settings: PolicyFile
    checks: tuple[tuple[Check, Any], ...]
    sha256: str
    source: str = "lockgate.yaml"

    @property
    def needs(self) -> frozenset[Need]:
        out: set[Need] = set()
        for kind, _ in self.checks:
            out |= kind.needs
        return frozenset(out)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind.name for kind, _ in self.checks)


# -- line marks -----------------------------------------------------------------------------------
def _line_map(node: yaml.Node, path: Loc, lines: dict[Loc, int], duplicates: list[tuple[Loc, int]]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                duplicates.append(((*path, key), key_node.start_mark.line + 1))
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, (*path, index), lines, duplicates)


def _line_of(lines: Mapping[Loc, int], loc: Loc) -> int:
    """The line of ``loc``, or of its nearest ancestor that is in the file (a missing key)."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# -- pydantic errors in words ---------------------------------------------------------------------
_PHRASES = {
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "missing": "is required",
    "dict_type": "must be a mapping of keys to values",
    "model_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "list_type": "must be a list",
}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        info = current.model_fields.get(part)
        current = _model_in(info.annotation) if info is not None else None
    return sorted(current.model_fields) if current is not None else []


def _phrase(error: Mapping[str, Any], model: type[BaseModel], loc: Loc) -> str:
    kind = str(error.get("type"))
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        return "is not a known key" + (f" (known: {', '.join(known)})" if known else "")
    if kind in _PHRASES:
        return _PHRASES[kind]
    message = str(error.get("msg", "is not valid"))
    message = message.removeprefix("Value error, ")
    if message.startswith("Input should be"):
        message = "must be" + message.removeprefix("Input should be")
    return message


@dataclass
class _Problems:
    """Errors gathered while parsing, each with its location, reported together."""

    source: str
    lines: Mapping[Loc, int]
    items: list[tuple[int, str]]

    def add(self, loc: Loc, phrase: str) -> None:
        self.items.append((_line_of(self.lines, loc), f"{_dotted(loc)}: {phrase}"))

    def add_pydantic(self, exc: pydantic.ValidationError, model: type[BaseModel], prefix: Loc) -> None:
        for error in exc.errors():
            loc = tuple(error["loc"])
            self.add((*prefix, *loc), _phrase(error, model, loc))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        ordered = sorted(set(self.items))
        text = "\n".join(f"{self.source} line {line}: {what}" for line, what in ordered)
        raise ValidationError(
            text,
            hint="fix the policy file; see docs/ci-cd.md for every key",
            detail=[{"line": line, "problem": what} for line, what in ordered],
        )


# -- parsing --------------------------------------------------------------------------------------
def _check_settings(kind: Check, value: Any, loc: Loc, problems: _Problems) -> Any:
    """Validate one ``checks:`` entry; None when it is switched off or invalid."""
    if value is False:
        return None
    if kind.is_list:
        items = value if isinstance(value, list) else [value]
        if not items:
            problems.add(loc, "must list at least one entry (or be removed)")
            return None
        parsed = []
        for index, item in enumerate(items):
            item_loc = (*loc, index) if isinstance(value, list) else loc
            try:
                parsed.append(kind.spec.model_validate({} if item is None or item is True else item))
            except pydantic.ValidationError as exc:
                problems.add_pydantic(exc, kind.spec, item_loc)
        return parsed if len(parsed) == len(items) else None
    if isinstance(value, list):
        problems.add(loc, "must be a mapping of settings, not a list")
        return None
    try:
        return kind.spec.model_validate({} if value is None or value is True else value)
    except pydantic.ValidationError as exc:
        problems.add_pydantic(exc, kind.spec, loc)
        return None


def _check_ref(text: str | None, loc: Loc, problems: _Problems) -> None:
    if text is None:
        return
    try:
        parse_ref(text, "dataset name", allow_alias=False)
    except UserError as exc:
        problems.add(loc, f"{exc.message} (write NAME@VERSION, e.g. breast-cancer@1)")


def _semantic(settings: PolicyFile, checks: Sequence[tuple[Check, Any]], problems: _Problems) -> None:
    _check_ref(settings.holdout.dataset if settings.holdout else None, ("holdout", "dataset"), problems)
    _check_ref(settings.reference, ("reference",), problems)
    for kind, spec in checks:
        if "holdout" in kind.needs and settings.holdout is None:
            problems.add(
                ("checks", kind.name),
                "needs a holdout; add `holdout: {dataset: NAME@VERSION, target: COLUMN}`",
            )
        for index, item in enumerate(spec if isinstance(spec, list) else [spec]):
            metric = getattr(item, "metric", None)
            if isinstance(metric, str) and METRICS[metric].task != settings.task:
                loc: Loc = ("checks", kind.name, index, "metric") if kind.is_list else ("checks", kind.name)
                problems.add(
                    loc,
                    f"metric '{metric}' is for {METRICS[metric].task}, and the policy's task is "
                    f"{settings.task} (set `task:` at the top)",
                )


def parse_policy(text: str, source: str = "lockgate.yaml") -> Policy:
    """Parse and validate a policy; every problem is reported with its line and key."""
    problems = _Problems(source, {}, [])
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError(
            f"{source} line {line}: not valid YAML: {problem}", hint="check the indentation and quoting there"
        ) from exc
    if not isinstance(data, dict) or root is None:
        raise ValidationError(
            f"{source} line 1: the policy must be a mapping with a `checks:` key",
            hint="start from examples/breast_cancer/lockgate.yaml",
        )
    lines: dict[Loc, int] = {}
    duplicates: list[tuple[Loc, int]] = []
    _line_map(root, (), lines, duplicates)
    problems.lines = lines
    for loc, line in duplicates:
        problems.items.append((line, f"{_dotted(loc)}: is given twice"))
    try:
        settings = PolicyFile.model_validate(data)
    except pydantic.ValidationError as exc:
        problems.add_pydantic(exc, PolicyFile, ())
        problems.raise_if_any()
        raise  # pragma: no cover - raise_if_any raised
    checks: list[tuple[Check, Any]] = []
    if not settings.checks:
        problems.add(("checks",), f"must name at least one check kind ({', '.join(sorted(CHECK_KINDS))})")
    for name, value in settings.checks.items():
        kind = CHECK_KINDS.get(str(name))
        if kind is None:
            problems.add(
                ("checks", str(name)),
                f"is not a known check kind (known: {', '.join(sorted(CHECK_KINDS))})",
            )
            continue
        parsed = _check_settings(kind, value, ("checks", str(name)), problems)
        if parsed is not None:
            checks.append((kind, parsed))
    if not problems.items:
        _semantic(settings, checks, problems)
    problems.raise_if_any()
    sha = hashlib.sha256(text.encode()).hexdigest()
    return Policy(settings=settings, checks=tuple(checks), sha256=sha, source=source)


def load_policy(path: Path) -> Policy:
    """Read and parse the policy file at ``path``."""
    if not path.is_file():
        raise NotFound(
            f"policy file '{path}' does not exist",
            hint="write one (see examples/breast_cancer/lockgate.yaml) or pass --policy PATH",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"policy file '{path}' cannot be read: {exc}", hint="check the file") from exc
    return parse_policy(text, source=path.name)
