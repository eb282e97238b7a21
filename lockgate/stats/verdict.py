"""What a policy concludes from a snapshot: continue, promote, roll back, or halt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from lockgate.stats.accumulators import VariantStats

__all__ = ["Decision", "Policy", "Verdict"]


class Decision(StrEnum):
    """What to do next; ``halt`` means the numbers cannot be trusted (a sample-ratio mismatch)."""

    CONTINUE = "continue"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    HALT = "halt"


@dataclass(frozen=True)
class Verdict:
    """A decision with the reasons in words and the numbers behind it (for the audit log)."""

    decision: Decision
    reasons: tuple[str, ...] = ()
    numbers: Mapping[str, float] = field(default_factory=dict)


class Policy(Protocol):
    """Decides from the baseline's and the candidate's accumulated stats. Pure: no clock, no I/O."""

    def decide(self, baseline: VariantStats, candidate: VariantStats) -> Verdict: ...
