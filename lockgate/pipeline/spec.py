"""``pipeline.yaml``: the stages of a pipeline, parsed once into typed objects with line-numbered errors.

A stage is a command (``cmd:``, run by bash in the pipeline file's folder) or a Python callable
(``call: module:function``, called with ``params``), with the files it reads (``deps``), the source
files it runs (``code``) and the files it writes (``outs``). Stages run in file order; a stage may read
only what earlier stages write, so the order is also the dependency order.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lockgate.errors import NotFound, UserError, ValidationError

__all__ = ["Pipeline", "PipelineFile", "StageSpec", "load_pipeline", "parse_pipeline"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CALL = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
Loc = tuple[str | int, ...]


class StageSpec(BaseModel):
    """One stage: what it runs, what it reads and what it writes."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    cmd: str | None = None
    call: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    deps: list[str] = Field(default_factory=list)
    code: list[str] = Field(default_factory=list)
    outs: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    always_run: bool = False
    description: str = ""

    @field_validator("call")
    @classmethod
    def _call_is_an_entry(cls, value: str | None) -> str | None:
        if value is not None and not _CALL.match(value):
            raise ValueError(f"'{value}' is not a Python entry; write module.path:function")
        return value

    @model_validator(mode="after")
    def _one_action(self) -> StageSpec:
        if (self.cmd is None) == (self.call is None):
            raise ValueError("give exactly one of cmd, call")
        if self.params and self.call is None:
            raise ValueError("params are passed to a `call:`; put a command's arguments in `cmd:`")
        return self

    @property
    def action(self) -> str:
        """What the stage runs, as shown in the plan and hashed into its code digest."""
        return self.cmd if self.cmd is not None else f"{self.call}({json.dumps(self.params, sort_keys=True)})"

    @property
    def action_sha256(self) -> str:
        doc = {"cmd": self.cmd, "call": self.call, "params": self.params, "env": self.env}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


class PipelineFile(BaseModel):
    """The top level of ``pipeline.yaml``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    version: Literal[1] = 1
    lock: str | None = None
    stages: dict[str, StageSpec]


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline: its stages in order, the folder they run in and where the lock file is."""

    stages: tuple[tuple[str, StageSpec], ...]
    root: Path
    lock_path: Path
    source: str = "pipeline.yaml"

    def producer(self, path: str) -> str | None:
        """The stage whose ``outs`` holds ``path``, if any."""
        for name, stage in self.stages:
            if path in stage.outs:
                return name
        return None


def _lines(node: yaml.Node, path: Loc, out: dict[Loc, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*path, str(key.value))] = key.start_mark.line + 1
            _lines(value, (*path, str(key.value)), out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), out)


def _where(lines: Mapping[Loc, int], loc: Loc) -> tuple[int, str]:
    line = next((lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in lines), 1)
    dotted = ""
    for part in loc:
        dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else str(part))
    return line, dotted or "(top level)"


def _phrase(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type"))
    if kind == "extra_forbidden":
        return "is not a known key (known: " + ", ".join(sorted(StageSpec.model_fields)) + ")"
    if kind == "missing":
        return "is required"
    return (
        str(error.get("msg", "is not valid"))
        .removeprefix("Value error, ")
        .replace("Input should be", "must be")
    )


def parse_pipeline(text: str, root: Path, source: str = "pipeline.yaml") -> Pipeline:
    """Parse and validate a pipeline; every problem is reported with its line and key."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ValidationError(
            f"{source} line {mark.line + 1 if mark else 1}: not valid YAML: {getattr(exc, 'problem', exc)}",
            hint="check the indentation and quoting there",
        ) from exc
    if not isinstance(data, dict) or node is None:
        raise ValidationError(f"{source} line 1: a pipeline is a mapping with a `stages:` key")
    lines: dict[Loc, int] = {}
    _lines(node, (), lines)
    problems: list[tuple[int, str]] = []

    def add(loc: Loc, phrase: str) -> None:
        line, dotted = _where(lines, loc)
        problems.append((line, f"{dotted}: {phrase}"))

    parsed: PipelineFile | None = None
    try:
        parsed = PipelineFile.model_validate(data)
    except pydantic.ValidationError as exc:
        for error in exc.errors():
            add(tuple(error["loc"]), _phrase(error))
    if parsed is not None:
        if not parsed.stages:
            add(("stages",), "must name at least one stage")
        written: dict[str, str] = {}
        for name, stage in parsed.stages.items():
            if not _NAME.match(name):
                add(("stages", name), "a stage name is letters, digits, '.', '_' or '-'")
            for index, out in enumerate(stage.outs):
                if out in written:
                    add(
                        ("stages", name, "outs", index),
                        f"'{out}' is already an out of stage '{written[out]}'",
                    )
                written.setdefault(out, name)
        order = list(parsed.stages)
        for name, stage in parsed.stages.items():
            for index, dep in enumerate(stage.deps):
                maker = written.get(dep)
                if maker is not None and order.index(maker) >= order.index(name):
                    add(
                        ("stages", name, "deps", index),
                        f"'{dep}' is written by stage '{maker}', which does not run before '{name}' "
                        "(move that stage up)",
                    )
                elif maker is None and not (root / dep).exists():
                    add(("stages", name, "deps", index), f"'{dep}' does not exist and no stage writes it")
            for index, path in enumerate(stage.code):
                if not (root / path).exists():
                    add(("stages", name, "code", index), f"'{path}' does not exist")
    if problems:
        ordered = sorted(set(problems))
        raise ValidationError(
            "\n".join(f"{source} line {line}: {what}" for line, what in ordered),
            hint="fix the pipeline file; see docs/ci-cd.md (Pipelines) for every key",
            detail=[{"line": line, "problem": what} for line, what in ordered],
        )
    assert parsed is not None
    lock = root / (parsed.lock or f"{Path(source).stem}.lock")
    return Pipeline(tuple(parsed.stages.items()), root, lock, source)


def load_pipeline(path: Path) -> Pipeline:
    """Read and parse the pipeline file at ``path``; its stages run in its folder."""
    if not path.is_file():
        raise NotFound(
            f"pipeline file '{path}' does not exist",
            hint="write one (see examples/breast_cancer/pipeline.yaml) or pass its path",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"pipeline file '{path}' cannot be read: {exc}", hint="check the file") from exc
    return parse_pipeline(text, path.resolve().parent, source=path.name)
