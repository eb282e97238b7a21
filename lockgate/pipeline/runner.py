"""The pipeline's shell: digest files, read and write the lock file, run the stages that must run.

The lock file is written after every stage that succeeds, so a run that fails part-way resumes where
it stopped: the next run skips what already succeeded with the same inputs and reruns the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lockgate.errors import UserError, ValidationError
from lockgate.pipeline.plan import Decision, StageRecord, decide, plan
from lockgate.pipeline.spec import Pipeline, StageSpec
from lockgate.tracking.digest import sha256_file, sha256_tree

__all__ = ["PipelineRun", "StageOutcome", "digest_path", "dry_run", "read_lock", "run_pipeline", "write_lock"]

# A `call:` stage runs in its own Python process, like a `cmd:` stage, so it cannot change this one.
_CALL_SNIPPET = (
    "import importlib, json, sys\n"
    "module, _, function = sys.argv[1].partition(':')\n"
    "getattr(importlib.import_module(module), function)(**json.loads(sys.argv[2]))\n"
)


def digest_path(path: Path) -> str | None:
    """SHA-256 of a file, of a folder's manifest, or None when nothing is there."""
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        return sha256_tree(path)
    return None


def read_lock(path: Path) -> dict[str, StageRecord]:
    """The records of the stages that last succeeded; empty when there is no lock file yet."""
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValidationError(
            f"lock file '{path}' is not valid YAML: {exc}",
            hint="delete it; the next run reruns every stage and writes it again",
        ) from exc
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, dict):
        raise ValidationError(f"lock file '{path}' has no `stages:` mapping", hint="delete it and run again")
    return {str(name): StageRecord.from_dict(record) for name, record in stages.items()}


def write_lock(path: Path, records: Mapping[str, StageRecord]) -> None:
    """Write the lock file atomically (a reader sees the old one or the new one)."""
    doc = {"version": 1, "stages": {name: record.to_dict() for name, record in records.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        "# Written by `lockgate pipeline run`: what each stage last ran with. Do not edit.\n"
        + yaml.safe_dump(doc, sort_keys=False),
        encoding="utf-8",
    )
    os.replace(tmp, path)


def _digests(root: Path, paths: list[str]) -> dict[str, str | None]:
    return {p: digest_path(root / p) for p in paths}


def _decide(
    pipeline: Pipeline, name: str, stage: StageSpec, record: StageRecord | None, force: bool
) -> Decision:
    root = pipeline.root
    return decide(
        name,
        record,
        action_sha256=stage.action_sha256,
        code=_digests(root, stage.code),
        deps=_digests(root, stage.deps),
        outs=_digests(root, stage.outs),
        is_forced=force,
        is_always_run=stage.always_run,
    )


def _check_force(pipeline: Pipeline, force: frozenset[str]) -> None:
    names = [name for name, _ in pipeline.stages]
    unknown = sorted(force - set(names) - {"*"})
    if unknown:
        raise UserError(
            f"--force names no stage of {pipeline.source}: {', '.join(unknown)}",
            hint=f"stages are {', '.join(names)}",
        )


def dry_run(pipeline: Pipeline, *, force: frozenset[str] = frozenset()) -> list[Decision]:
    """What a run would do now, without running anything."""
    _check_force(pipeline, force)
    records = read_lock(pipeline.lock_path)
    decisions = {
        name: _decide(pipeline, name, stage, records.get(name), name in force or "*" in force)
        for name, stage in pipeline.stages
    }
    producers = {out: name for name, stage in pipeline.stages for out in stage.outs}
    return plan([(name, stage.deps) for name, stage in pipeline.stages], decisions, producers)


@dataclass(frozen=True)
class StageOutcome:
    """What happened to one stage in a run."""

    stage: str
    status: str  # "ran", "skipped", "failed", "not run"
    reason: str
    duration_s: float = 0.0
    exit_code: int | None = None


@dataclass
class PipelineRun:
    """The outcome of every stage, in order; ``failed`` names the stage that stopped the run."""

    outcomes: list[StageOutcome] = field(default_factory=list)
    failed: str | None = None

    @property
    def is_ok(self) -> bool:
        return self.failed is None


def _argv(stage: StageSpec) -> list[str]:
    if stage.cmd is not None:
        return ["bash", "-eo", "pipefail", "-c", stage.cmd]
    return [sys.executable, "-c", _CALL_SNIPPET, str(stage.call), json.dumps(stage.params)]


def _environment(stage: StageSpec) -> dict[str, str]:
    env = dict(os.environ)
    # `python` and `lockgate` in a command mean the ones of this installation.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(stage.env)
    return env


Event = Callable[[str, int, int, str, Decision | StageOutcome], None]


def run_pipeline(
    pipeline: Pipeline,
    *,
    force: frozenset[str] = frozenset(),
    on_event: Event | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> PipelineRun:
    """Run the stages in order, skipping unchanged ones; stop at the first that fails.

    ``on_event(kind, index, total, stage, payload)`` reports progress: ``start`` with the decision
    before a stage runs (or is skipped), ``done`` with its outcome.
    """
    _check_force(pipeline, force)
    records = read_lock(pipeline.lock_path)
    result = PipelineRun()
    total = len(pipeline.stages)

    def emit(kind: str, index: int, name: str, payload: Decision | StageOutcome) -> None:
        if on_event is not None:
            on_event(kind, index, total, name, payload)

    for index, (name, stage) in enumerate(pipeline.stages, start=1):
        if result.failed is not None:
            result.outcomes.append(StageOutcome(name, "not run", f"stage '{result.failed}' failed"))
            continue
        decision = _decide(pipeline, name, stage, records.get(name), name in force or "*" in force)
        emit("start", index, name, decision)
        if not decision.should_run:
            outcome = StageOutcome(name, "skipped", decision.reason)
            result.outcomes.append(outcome)
            emit("done", index, name, outcome)
            continue
        missing = [d for d in stage.deps if digest_path(pipeline.root / d) is None]
        if missing:
            raise UserError(
                f"stage '{name}' needs {', '.join(missing)}, which is not there",
                hint="an earlier stage should write it (list it in that stage's outs) or create it",
            )
        code, deps = _digests(pipeline.root, stage.code), _digests(pipeline.root, stage.deps)
        started = clock()
        exit_code = subprocess.run(
            _argv(stage), cwd=pipeline.root, env=_environment(stage), check=False
        ).returncode
        duration = clock() - started
        outs = _digests(pipeline.root, stage.outs)
        unwritten = sorted(p for p, digest in outs.items() if digest is None)
        if exit_code != 0 or unwritten:
            why = f"exit code {exit_code}" if exit_code != 0 else f"it did not write {', '.join(unwritten)}"
            outcome = StageOutcome(name, "failed", why, duration, exit_code)
            result.outcomes.append(outcome)
            result.failed = name
            records.pop(name, None)
            write_lock(pipeline.lock_path, records)
            emit("done", index, name, outcome)
            continue
        records[name] = StageRecord(
            stage.action_sha256, code, deps, outs, finished_ms=int(time.time() * 1000), duration_s=duration
        )
        write_lock(pipeline.lock_path, records)
        outcome = StageOutcome(name, "ran", decision.reason, duration, exit_code)
        result.outcomes.append(outcome)
        emit("done", index, name, outcome)
    return result
