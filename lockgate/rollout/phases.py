"""A rollout's phases and the one table of allowed moves between them."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

__all__ = ["LIVE_PHASES", "TERMINAL_PHASES", "TRANSITIONS", "Phase"]


class Phase(StrEnum):
    """Where a rollout is. The live phases carry traffic to the candidate (or a mirror of it)."""

    PENDING = "pending"
    WARMING = "warming"  # blue-green: the candidate warms up on mirrored traffic
    SHADOWING = "shadowing"  # shadow: the candidate answers mirrored requests, never returned
    STEPPING = "stepping"  # canary and rolling: the candidate's share grows step by step
    BAKING = "baking"  # blue-green: the candidate has all traffic, the baseline stays warm
    EXPERIMENTING = "experimenting"  # A/B: a fixed split until the policy decides
    PAUSED = "paused"
    HALTED = "halted"  # the numbers cannot be trusted; traffic back on the baseline, a human decides
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    COMPLETED = "completed"  # a shadow test passed; traffic stays on the baseline

    @property
    def is_live(self) -> bool:
        """The candidate gets traffic (or a mirror of it) and the controller steps the rollout."""
        return self in LIVE_PHASES

    @property
    def is_terminal(self) -> bool:
        """The rollout is over: promoted, rolled back or completed; nothing moves it again."""
        return self in TERMINAL_PHASES

    @property
    def is_settled(self) -> bool:
        """Nothing will change without a person: over, or halted for a human to decide."""
        return self in TERMINAL_PHASES or self is Phase.HALTED

    @property
    def is_alarm(self) -> bool:
        """A phase someone should hear about: rolled back, or halted."""
        return self in (Phase.ROLLED_BACK, Phase.HALTED)


LIVE_PHASES = frozenset({Phase.WARMING, Phase.SHADOWING, Phase.STEPPING, Phase.BAKING, Phase.EXPERIMENTING})
TERMINAL_PHASES = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.COMPLETED})
_ENDS = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK})

TRANSITIONS: Mapping[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset({Phase.WARMING, Phase.SHADOWING, Phase.STEPPING, Phase.EXPERIMENTING} | _ENDS),
    Phase.WARMING: frozenset({Phase.BAKING, Phase.PAUSED, Phase.HALTED} | _ENDS),
    Phase.SHADOWING: frozenset({Phase.PAUSED, Phase.HALTED, Phase.COMPLETED} | _ENDS),
    Phase.STEPPING: frozenset({Phase.STEPPING, Phase.PAUSED, Phase.HALTED} | _ENDS),
    Phase.BAKING: frozenset({Phase.PAUSED, Phase.HALTED} | _ENDS),
    Phase.EXPERIMENTING: frozenset({Phase.PAUSED, Phase.HALTED} | _ENDS),
    Phase.PAUSED: LIVE_PHASES | {Phase.HALTED} | _ENDS,
    Phase.HALTED: _ENDS,
    Phase.PROMOTED: frozenset(),
    Phase.ROLLED_BACK: frozenset(),
    Phase.COMPLETED: frozenset(),
}
"""The one table of allowed moves: phase → the phases it may move to."""
