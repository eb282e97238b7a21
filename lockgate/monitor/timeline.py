"""The weights of each deployment over time, kept in memory for the dashboard's timeline.

The audit log says what happened and why; it does not carry the routing weights. The deployment
manager records a point here each time it swaps in a new routing table (a few times per rollout,
never on the request path), and the dashboard draws the weights as steps between the points.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_MAX_POINTS", "TimelinePoint", "WeightTimeline"]

DEFAULT_MAX_POINTS = 500


@dataclass(frozen=True)
class TimelinePoint:
    """From ``at`` (Unix seconds) on, the deployment was in ``phase`` with these weights (percent)."""

    at: float
    phase: str
    weights_percent: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "phase": self.phase, "weights_percent": dict(self.weights_percent)}


class WeightTimeline:
    """The newest ``max_points`` weight changes per deployment (older ones are dropped)."""

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self.max_points = max_points
        self._points: dict[str, deque[TimelinePoint]] = {}

    def record(self, name: str, at: float, phase: str, weights_percent: Mapping[str, float]) -> None:
        """Add a point unless the phase and weights are those of the last one."""
        points = self._points.setdefault(name, deque(maxlen=self.max_points))
        if points and points[-1].phase == phase and dict(points[-1].weights_percent) == dict(weights_percent):
            return
        points.append(TimelinePoint(at, phase, dict(weights_percent)))

    def points(self, name: str) -> list[TimelinePoint]:
        return list(self._points.get(name, ()))
