"""Whether each stage runs: the pure core of the pipeline cache, like DVC's.

A stage is skipped when what it runs (its command or call and params), the digests of its ``code`` and
``deps``, and the digests of its ``outs`` all equal what the lock file recorded the last time it
succeeded. The inputs here are plain digests (``None`` for a path that does not exist); the runner
computes them from disk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Decision", "StageRecord", "decide", "plan"]

Digests = Mapping[str, str | None]


@dataclass(frozen=True)
class StageRecord:
    """What the lock file holds for a stage that succeeded: the digests it ran with and wrote."""

    action_sha256: str
    code: Mapping[str, str | None] = field(default_factory=dict)
    deps: Mapping[str, str | None] = field(default_factory=dict)
    outs: Mapping[str, str | None] = field(default_factory=dict)
    finished_ms: int = 0
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "action_sha256": self.action_sha256,
            "code": dict(self.code),
            "deps": dict(self.deps),
            "outs": dict(self.outs),
            "finished_ms": self.finished_ms,
            "duration_s": round(self.duration_s, 3),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> StageRecord:
        return cls(
            str(doc.get("action_sha256", "")),
            dict(doc.get("code") or {}),
            dict(doc.get("deps") or {}),
            dict(doc.get("outs") or {}),
            int(doc.get("finished_ms", 0)),
            float(doc.get("duration_s", 0.0)),
        )


@dataclass(frozen=True)
class Decision:
    """Run or skip one stage, and why."""

    stage: str
    should_run: bool
    reason: str


def _changed(recorded: Mapping[str, str | None], current: Digests) -> list[str]:
    paths = sorted(set(recorded) | set(current))
    return [p for p in paths if recorded.get(p, "absent") != current.get(p, "absent")]


def decide(
    stage: str,
    record: StageRecord | None,
    *,
    action_sha256: str,
    code: Digests,
    deps: Digests,
    outs: Digests,
    is_forced: bool = False,
    is_always_run: bool = False,
) -> Decision:
    """Run ``stage`` unless the lock file's record matches what is on disk now."""
    if is_forced:
        return Decision(stage, True, "forced")
    if is_always_run:
        return Decision(stage, True, "always_run")
    if record is None:
        return Decision(stage, True, "no successful run recorded")
    if record.action_sha256 != action_sha256:
        return Decision(stage, True, "its command or params changed")
    for what, recorded, current in (("code", record.code, code), ("input", record.deps, deps)):
        changed = _changed(recorded, current)
        if changed:
            return Decision(stage, True, f"{what} changed: {', '.join(changed)}")
    missing = [p for p, digest in outs.items() if digest is None]
    if missing:
        return Decision(stage, True, f"output missing: {', '.join(sorted(missing))}")
    changed = _changed(record.outs, outs)
    if changed:
        return Decision(stage, True, f"output changed since it ran: {', '.join(changed)}")
    return Decision(stage, False, "unchanged")


def plan(
    stages: Sequence[tuple[str, Sequence[str]]],
    decisions: Mapping[str, Decision],
    producers: Mapping[str, str],
) -> list[Decision]:
    """The whole run as it looks before anything runs (``--dry-run``).

    ``stages`` is each stage's name and deps in order; ``decisions`` is :func:`decide` on today's
    digests; ``producers`` maps an out to the stage that writes it. A stage whose input an earlier
    running stage writes is planned to run, since that input's new digest is not known yet (when it
    comes out the same, the real run skips the stage after all).
    """
    running: set[str] = set()
    out = []
    for name, deps in stages:
        decision = decisions[name]
        if not decision.should_run:
            upstream = sorted({producers[d] for d in deps if d in producers and producers[d] in running})
            if upstream:
                decision = Decision(name, True, f"may run: its inputs come from {', '.join(upstream)}")
        if decision.should_run:
            running.add(name)
        out.append(decision)
    return out
