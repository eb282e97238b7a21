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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lockgate.config import Document, Problems, Schema, load, parse_yaml, read_yaml

__all__ = ["Pipeline", "PipelineFile", "StageSpec", "load_pipeline", "parse_pipeline"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CALL = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_DOCS = "docs/ci-cd.md (Pipelines)"
_EXAMPLE = "examples/breast_cancer/pipeline.yaml"


class StageSpec(Schema):
    """One stage: what it runs, what it reads and what it writes."""

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


class PipelineFile(Schema):
    """The top level of ``pipeline.yaml``."""

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


def parse_pipeline(text: str, root: Path, source: str = "pipeline.yaml") -> Pipeline:
    """Parse and validate a pipeline; every problem is reported with its line and key."""
    return _pipeline(parse_yaml(text, source), root)


def _pipeline(document: Document, root: Path) -> Pipeline:
    parsed = load(PipelineFile, document, docs=_DOCS, example=_EXAMPLE)
    problems = Problems(document, docs=_DOCS)
    if not parsed.stages:
        problems.add(("stages",), "must name at least one stage", "add a stage with `cmd:` or `call:`")
    written: dict[str, str] = {}
    for name, stage in parsed.stages.items():
        if not _NAME.match(name):
            problems.add(
                ("stages", name), "a stage name is letters, digits, '.', '_' or '-'", "rename the stage"
            )
        for index, out in enumerate(stage.outs):
            if out in written:
                problems.add(
                    ("stages", name, "outs", index),
                    f"'{out}' is already an out of stage '{written[out]}'",
                    "let one stage write each file",
                )
            written.setdefault(out, name)
    order = list(parsed.stages)
    for name, stage in parsed.stages.items():
        for index, dep in enumerate(stage.deps):
            maker = written.get(dep)
            if maker is not None and order.index(maker) >= order.index(name):
                problems.add(
                    ("stages", name, "deps", index),
                    f"'{dep}' is written by stage '{maker}', which does not run before '{name}' "
                    "(move that stage up)",
                    f"move stage '{maker}' above '{name}'",
                )
            elif maker is None and not (root / dep).exists():
                problems.add(
                    ("stages", name, "deps", index),
                    f"'{dep}' does not exist and no stage writes it",
                    "check the path (relative to the pipeline file) or add the stage that writes it",
                )
        for index, path in enumerate(stage.code):
            if not (root / path).exists():
                problems.add(
                    ("stages", name, "code", index),
                    f"'{path}' does not exist",
                    "check the path (relative to the pipeline file)",
                )
    problems.raise_if_any()
    lock = root / (parsed.lock or f"{Path(str(document.source)).stem}.lock")
    return Pipeline(tuple(parsed.stages.items()), root, lock, str(document.source))


def load_pipeline(path: Path) -> Pipeline:
    """Read and parse the pipeline file at ``path``; its stages run in its folder."""
    hint = f"write one (see {_EXAMPLE}) or pass its path"
    return _pipeline(read_yaml(path, what="pipeline file", hint=hint), path.resolve().parent)
