"""One loader for lockgate's YAML files: deployment specs, gate policies and pipelines.

YAML text → a node tree that keeps where each key began → pydantic models → on any mistake one
:class:`~lockgate.errors.ValidationError` that lists every problem with its file, line and key path
and says the fix::

    deploy.yaml line 9: strategy.steps[1].weight_percent: must be between 0 and 100
    hint: Fix: give the candidate's share, e.g. 5; see docs/rollouts.md for every key.

A plain mapping (JSON from the API, a spec stored in the database) goes through the same models
with no file and no lines: ``strategy.steps[1].weight_percent: must be between 0 and 100``.
Validators in the models raise :func:`problem` to say what is wrong, the fix, and which key
below them it is about; pydantic's own errors are turned into the same words here, in one place.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import pydantic
import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Tag, model_validator
from pydantic_core import PydanticCustomError

from lockgate.errors import NotFound, UserError, ValidationError

__all__ = [
    "Document",
    "Loc",
    "Problem",
    "Problems",
    "Schema",
    "at_least",
    "did_you_mean",
    "dotted",
    "load",
    "one_of",
    "parse_yaml",
    "problem",
    "read_yaml",
]

Loc = tuple[str | int, ...]
Model = TypeVar("Model", bound=BaseModel)

_PROBLEM = "lockgate_problem"  # the error type of :func:`problem`, read back in :meth:`Problems.add_errors`


# -- YAML with line numbers -----------------------------------------------------------------------
@dataclass(frozen=True)
class Document:
    """A parsed YAML file: its plain data, the line where each key path begins, and its name.

    ``duplicates`` are keys written twice in one mapping (YAML keeps the last one silently);
    ``text`` is what was parsed (a policy's digest is taken over it).
    """

    data: Any
    lines: Mapping[Loc, int] = field(default_factory=dict)
    source: str | None = None
    duplicates: tuple[tuple[Loc, int], ...] = ()
    text: str = ""

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of its nearest ancestor in the file (a missing key: its parent)."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None


def _mark_lines(node: yaml.Node, path: Loc, lines: dict[Loc, int], duplicates: list[tuple[Loc, int]]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                duplicates.append(((*path, key), key_node.start_mark.line + 1))
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _mark_lines(value_node, (*path, key), lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _mark_lines(item, (*path, index), lines, duplicates)


def parse_yaml(text: str, source: str) -> Document:
    """Parse YAML text once into data and line marks; bad YAML is a ValidationError at its line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        what = getattr(exc, "problem", None) or str(exc)
        raise ValidationError(
            f"{source} line {line}: not valid YAML: {what}",
            hint="Fix: check the indentation and quoting at that line.",
            detail={"file": source, "line": line},
        ) from exc
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    duplicates: list[tuple[Loc, int]] = []
    if node is not None:
        _mark_lines(node, (), lines, duplicates)
    return Document(data, lines, source, tuple(duplicates), text)


def read_yaml(path: Path, *, what: str, hint: str) -> Document:
    """Read and parse the YAML file at ``path`` (named by its file name in messages).

    ``what`` names the file in the errors ("policy file"); ``hint`` says where to start when it is
    missing.
    """
    if not path.is_file():
        raise NotFound(f"{what} '{path}' does not exist", hint=hint)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} '{path}' cannot be read: {exc}", hint="check the file") from exc
    return parse_yaml(text, path.name)


# -- models ---------------------------------------------------------------------------------------
class Schema(BaseModel):
    """Base of every model of a file: strict types (a number is written as a number, not quoted),
    no unknown keys (a typo is an error, not a silently ignored setting), immutable, finite numbers.

    ``null_is_default``: a key written with no value (``bake_s:`` or ``bake_s: null``) counts as
    not written, except the keys in ``null_is_a_value`` (where null means "off" or "none").
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)
    null_is_default: ClassVar[bool] = False
    null_is_a_value: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _null_is_not_given(cls, data: Any) -> Any:
        if cls.null_is_default and isinstance(data, Mapping):
            keep = cls.null_is_a_value | (data.keys() - cls.model_fields.keys())  # an unknown key stays one
            return {k: v for k, v in data.items() if v is not None or k in keep}
        return data


# -- problems ---------------------------------------------------------------------------------------
def problem(text: str, *, fix: str = "", at: Loc = ()) -> PydanticCustomError:
    """The error a model's validator raises: what is wrong, the fix, and the key below it (``at``)."""
    return PydanticCustomError(_PROBLEM, "{text}", {"text": text, "fix": fix, "at": at})


def did_you_mean(word: str, choices: Iterable[Any]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def one_of(*choices: str, fix: str) -> BeforeValidator:
    """A field that takes one of ``choices`` (``Annotated[Literal[...], one_of(...)]``), reported as
    ``must be one of a, b, not 'c'`` with the closest choice."""

    def check(value: Any) -> Any:
        if value not in choices:
            hint = fix + did_you_mean(str(value), choices)
            raise problem(f"must be one of {', '.join(choices)}, not {value!r}", fix=hint)
        return value

    return BeforeValidator(check)


def at_least(minimum: float) -> AfterValidator:
    """A number of ``minimum`` or more (``Annotated[int, at_least(1)]``), reported as
    ``must be at least 1``."""

    def check(value: float) -> float:
        if value < minimum:
            raise problem(f"must be at least {_number(minimum)}", fix=f"use a value >= {_number(minimum)}")
        return value

    return AfterValidator(check)


def dotted(loc: Loc, root: str = "(top level)") -> str:
    """``("strategy", "steps", 1, "weight_percent")`` → ``strategy.steps[1].weight_percent``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or root


@dataclass(frozen=True)
class Problem:
    """One mistake: where (key path, line), what, and how to fix it."""

    loc: Loc
    text: str
    fix: str = ""
    line: int | None = None
    kind: str = ""
    suggests: str | None = None  # an unknown key: the known key it looks like


# -- pydantic's errors in words ---------------------------------------------------------------------
def _unwrap(annotation: Any) -> Any:
    """The type under ``Annotated[...]`` and ``X | None``."""
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if _is_union(annotation) and len(args) == 1:
            annotation = args[0]
            continue
        return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _tags(member: Any) -> set[str]:
    """The tags pydantic puts in an error's location for one member of a discriminated union."""
    tags = {m.tag for m in getattr(member, "__metadata__", ()) if isinstance(m, Tag)}
    model = _unwrap(member)
    if isinstance(model, type) and issubclass(model, BaseModel):
        for info in model.model_fields.values():  # a tag field: one value (``type: Literal["canary"]``)
            values = typing.get_args(info.annotation)
            if typing.get_origin(info.annotation) is Literal and len(values) == 1:
                tags.add(str(values[0]))
    return tags


def _child(annotation: Any, part: str | int) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        info = annotation.model_fields.get(str(part))
        return None if info is None else info.annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    if origin in (list, tuple) and args:
        return args[0]
    return None


def _walk(model: Any, loc: Iterable[str | int]) -> tuple[Loc, Any]:
    """Pydantic's error location as the file's key path (union tags and ``[key]`` markers left
    out), and the type found at its end (to list the known keys)."""
    path: list[str | int] = []
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if part == "[key]":
            continue
        if _is_union(current):
            member = next((m for m in typing.get_args(current) if str(part) in _tags(m)), None)
            if member is not None:
                current = member
                continue
        path.append(part)
        current = _child(current, part)
    return tuple(path), _unwrap(current)


def _known_keys(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sorted(annotation.model_fields)
    return []


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _msg(error: Mapping[str, Any]) -> str:
    """Pydantic's own words, as "must be ...": ``must be greater than or equal to 1``."""
    return (
        str(error.get("msg", "is not valid"))
        .removeprefix("Value error, ")
        .replace("Input should be", "must be")
    )


def _input(error: Mapping[str, Any]) -> str:
    value = error.get("input")
    return "" if isinstance(value, Mapping | list) else f", not {value!r}"


_MAPPING = ("must be a mapping of keys to values", "write it as `key: value` lines")
_PHRASES: Mapping[str, Callable[[Mapping[str, Any]], tuple[str, str]]] = {
    "missing": lambda e: ("is required", f"add '{e['loc'][-1]}'" if e["loc"] else "add it"),
    "float_type": lambda e: ("must be a number", f"write a number without quotes{_input(e)}"),
    "float_parsing": lambda e: ("must be a number", f"write a number without quotes{_input(e)}"),
    "finite_number": lambda e: ("must be finite", "give a real number"),
    "int_type": lambda e: ("must be a whole number", f"write a whole number, e.g. 500{_input(e)}"),
    "int_parsing": lambda e: ("must be a whole number", f"write a whole number, e.g. 500{_input(e)}"),
    "int_from_float": lambda e: ("must be a whole number", f"write a whole number, e.g. 500{_input(e)}"),
    "bool_type": lambda e: ("must be true or false", "write true or false"),
    "bool_parsing": lambda e: ("must be true or false", "write true or false"),
    "string_type": lambda e: ("must be text", f"quote the value{_input(e)}"),
    "dict_type": lambda e: _MAPPING,
    "model_type": lambda e: _MAPPING,
    "model_attributes_type": lambda e: _MAPPING,
    "list_type": lambda e: ("must be a list", "write it as a YAML list, e.g. [a, b]"),
    "greater_than_equal": lambda e: (_msg(e), f"use a value >= {_number(e['ctx']['ge'])}"),
    "greater_than": lambda e: (_msg(e), f"use a value > {_number(e['ctx']['gt'])}"),
    "less_than_equal": lambda e: (_msg(e), f"use a value <= {_number(e['ctx']['le'])}"),
    "less_than": lambda e: (_msg(e), f"use a value < {_number(e['ctx']['lt'])}"),
}


def _literal(error: Mapping[str, Any]) -> tuple[str, str]:
    expected = str(error.get("ctx", {}).get("expected", ""))
    choices = [c.strip().strip("'\"") for c in expected.replace(" or ", ", ").split(",") if c.strip()]
    return _msg(error), f"use one of {', '.join(choices)}{did_you_mean(str(error.get('input')), choices)}"


def _union_tag(error: Mapping[str, Any], loc: Loc, tags: list[str]) -> Problem:
    """A tagged section (``strategy.type``, ``analysis.policy``) whose tag is missing or unknown."""
    ctx = error.get("ctx", {})
    key = str(ctx.get("discriminator", "")).strip("'")
    where = (*loc, key) if key.isidentifier() else loc
    if error["type"] == "union_tag_not_found":
        return Problem(where, "is required", f"add '{key}': one of {', '.join(tags)}", kind="missing")
    tag = str(ctx.get("tag"))
    kind = str(loc[-1]) if key == "type" and loc else key  # strategy.type: "unknown strategy 'x'"
    return Problem(where, f"unknown {kind} '{tag}'", f"use one of {', '.join(tags)}{did_you_mean(tag, tags)}")


def _union_tags(annotation: Any) -> list[str]:
    if not _is_union(annotation):
        return []
    return [t for member in typing.get_args(annotation) for t in sorted(_tags(member))]


def _in_words(error: Mapping[str, Any], model: type[BaseModel]) -> Problem:
    """One pydantic error as a problem relative to ``model``: the key path, the words and the fix."""
    kind = str(error["type"])
    raw: Loc = tuple(error["loc"])
    if kind == _PROBLEM:
        ctx = error["ctx"]
        loc, _ = _walk(model, raw)
        return Problem((*loc, *ctx["at"]), str(ctx["text"]), str(ctx["fix"]), kind=kind)
    if kind == "extra_forbidden":
        parent, found = _walk(model, raw[:-1])
        known = _known_keys(found)
        key = str(raw[-1])
        close = did_you_mean(key, known)
        return Problem(
            (*parent, raw[-1]),
            "is not a known key" + (f" (known: {', '.join(known)})" if known else ""),
            f"remove it or use a known key{close}",
            kind=kind,
            suggests=close.split("'")[1] if close else None,
        )
    loc, found = _walk(model, raw)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _union_tag(error, loc, _union_tags(found))
    if kind == "literal_error":
        text, fix = _literal(error)
        return Problem(loc, text, fix, kind=kind)
    if kind in _PHRASES:
        text, fix = _PHRASES[kind](error)
        return Problem(loc, text, fix, kind=kind)
    return Problem(loc, _msg(error), kind=kind)


# -- the report -------------------------------------------------------------------------------------
class Problems:
    """Problems found in one document, gathered so that all of them are reported at once.

    ``root`` names the document's top level in messages ("spec", "(top level)"); ``docs`` is the
    page that lists every key, named in the hint.
    """

    def __init__(
        self, document: Document | None = None, *, root: str = "(top level)", docs: str = ""
    ) -> None:
        self.document = document or Document(None)
        self.root = root
        self.docs = docs
        self.items: list[Problem] = [
            Problem(loc, "is given twice", "keep one of them", line) for loc, line in self.document.duplicates
        ]

    def add(self, loc: Loc, text: str, fix: str = "") -> None:
        """A problem found outside pydantic (a rule between files, a registry lookup)."""
        self.items.append(Problem(loc, text, fix, self.document.line_of(loc)))

    def add_errors(self, exc: pydantic.ValidationError, model: type[BaseModel], at: Loc = ()) -> None:
        """Every error of one validation of ``model`` (whose data sits at ``at`` in the document)."""
        for error in exc.errors():
            found = _in_words(error, model)
            loc = (*at, *found.loc)
            self.items.append(
                Problem(loc, found.text, found.fix, self.document.line_of(loc), found.kind, found.suggests)
            )

    def validate(self, model: type[Model], data: Any, *, at: Loc = ()) -> Model | None:
        """``model`` validated from ``data``, or None with its problems added."""
        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            self.add_errors(exc, model, at)
            return None

    def raise_if_any(self) -> None:
        if self.items:
            raise self.error()

    def error(self) -> ValidationError:
        """All problems as one error: a line each, in file order, with their fixes in the hint."""
        items = sorted(dict.fromkeys(self._without_implied()), key=lambda p: p.line or 0)
        source = self.document.source
        lines = [f"{self._where(p)}{dotted(p.loc, self.root)}: {p.text}" for p in items]
        first = items[0]
        detail: dict[str, Any] = {"path": dotted(first.loc, self.root)}
        if source:
            detail.update(file=source, line=first.line)
        if len(items) > 1:
            detail["problems"] = [
                {"path": dotted(p.loc, self.root), "line": p.line, "problem": p.text, "fix": p.fix}
                for p in items
            ]
        return ValidationError("\n".join(lines), hint=self._hint(items), detail=detail)

    def _where(self, item: Problem) -> str:
        """``deploy.yaml line 9: `` (nothing for plain data, which has no file and no lines)."""
        source = self.document.source
        if source is None:
            return ""
        return f"{source} line {item.line}: " if item.line else f"{source}: "

    def _without_implied(self) -> list[Problem]:
        """A missing key is left out when an unknown key beside it looks like it (a typo says both)."""
        typos = {(*p.loc[:-1], p.suggests) for p in self.items if p.suggests}
        return [p for p in self.items if not (p.kind == "missing" and p.loc in typos)]

    def _hint(self, items: list[Problem]) -> str:
        fixes = [p for p in items if p.fix]
        if len(items) == 1 and fixes:
            parts = [fixes[0].fix]
        else:
            parts = [f"{f'line {p.line}' if p.line else dotted(p.loc, self.root)}: {p.fix}" for p in fixes]
        text = "; ".join(parts) or "correct the key path above"
        if self.docs:
            text += f"; see {self.docs} for every key"
        return f"Fix: {text}."


def load(
    model: type[Model],
    source: Document | Any,
    *,
    root: str = "(top level)",
    docs: str = "",
    example: str = "",
) -> Model:
    """Validate a document (or plain data) into ``model``, or raise every problem at once.

    ``example`` is where an empty file should start from.
    """
    document = source if isinstance(source, Document) else Document(source)
    problems = Problems(document, root=root, docs=docs)
    if document.data is None and document.source is not None:
        problems.add((), "the file is empty", f"start from {example or docs}")
        problems.raise_if_any()
    try:
        parsed = model.model_validate(document.data)
    except pydantic.ValidationError as exc:
        problems.add_errors(exc, model)
        raise problems.error() from None
    problems.raise_if_any()  # keys given twice
    return parsed
