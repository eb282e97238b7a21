"""Checks on the parameters that every statistics object takes, with messages that name the fix."""

from __future__ import annotations

import math
from typing import Literal

from lockgate.errors import ValidationError

__all__ = ["ALTERNATIVES", "Alternative", "check_alpha", "check_alternative", "check_positive"]

Alternative = Literal["two-sided", "greater", "less"]
"""``greater``: the candidate's value is above the baseline's (candidate − baseline > null)."""

ALTERNATIVES: tuple[str, ...] = ("two-sided", "greater", "less")


def check_alpha(alpha: float, name: str = "alpha") -> float:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise ValidationError(
            f"{name}={alpha!r} is outside (0, 1)",
            hint=f"pass a probability such as {name}=0.05",
        )
    return float(alpha)


def check_alternative(alternative: str) -> Alternative:
    if alternative not in ALTERNATIVES:
        raise ValidationError(
            f"alternative={alternative!r} is not one of {', '.join(ALTERNATIVES)}",
            hint="'greater' tests candidate > baseline, 'less' candidate < baseline",
        )
    return alternative  # type: ignore[return-value]


def check_positive(value: float, name: str) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValidationError(f"{name}={value!r} must be a finite number > 0")
    return float(value)
