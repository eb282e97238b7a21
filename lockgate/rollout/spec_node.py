"""A YAML mapping read with the key path it sits at, so every error names where it is and the fix.

Shared by the deployment spec and its analysis section: ``Node(data, "analysis").number("alpha")``
raises ``ValidationError("analysis.alpha: must be a number ...", hint="Fix: ...")``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from lockgate.errors import ValidationError

__all__ = ["Node", "did_you_mean", "spec_error"]


def spec_error(path: str, problem: str, fix: str) -> ValidationError:
    where = path or "spec"
    return ValidationError(f"{where}: {problem}", hint=f"Fix: {fix}.", detail={"path": where})


def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Node:
    """A mapping being read, with the key path it sits at (for error messages)."""

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise spec_error(path, f"must be a mapping, not {type(data).__name__}", "use key: value")
        self.data: Mapping[Any, Any] = data
        self.path = path

    def path_of(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _raw(self, key: str, required: bool) -> Any:
        if key in self.data and self.data[key] is not None:
            return self.data[key]
        if required:
            raise spec_error(self.path_of(key), "is required", f"add '{key}' to the spec")
        return None

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self._raw(key, required)
        if value is not None and not isinstance(value, str):
            raise spec_error(self.path_of(key), "must be a string", f"quote the value of '{key}'")
        return value

    def choice(self, key: str, choices: tuple[str, ...], *, default: str, fix: str) -> str:
        """A string that must be one of ``choices`` (``default`` when absent)."""
        value = self.string(key) or default
        if value not in choices:
            raise spec_error(
                self.path_of(key),
                f"must be one of {', '.join(choices)}, not '{value}'{did_you_mean(value, choices)}",
                fix,
            )
        return value

    def required_string(self, key: str) -> str:
        return self.string(key, required=True) or ""

    def number(
        self,
        key: str,
        *,
        required: bool = False,
        default: float = 0.0,
        minimum: float | None = None,
    ) -> float:
        value = self._raw(key, required)
        if value is None:
            return default
        return self._check_number(key, value, minimum)

    def optional_number(self, key: str, *, minimum: float | None = None) -> float | None:
        value = self._raw(key, False)
        return None if value is None else self._check_number(key, value, minimum)

    def _check_number(self, key: str, value: Any, minimum: float | None) -> float:
        path = self.path_of(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise spec_error(path, f"must be a number, not {value!r}", "write it without quotes")
        if not math.isfinite(value):
            raise spec_error(path, "must be finite", "give a real number")
        if minimum is not None and value < minimum:
            raise spec_error(path, f"must be at least {minimum:g}", f"use a value >= {minimum:g}")
        return float(value)

    def integer(
        self, key: str, *, required: bool = False, default: int = 0, minimum: int | None = None
    ) -> int:
        value = self._raw(key, required)
        if value is None:
            return default
        path = self.path_of(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise spec_error(path, f"must be a whole number, not {value!r}", "e.g. 500")
        if minimum is not None and value < minimum:
            raise spec_error(path, f"must be at least {minimum}", f"use a value >= {minimum}")
        return value

    def fraction(self, key: str, *, default: float) -> float:
        value = self.optional_fraction(key)
        return default if value is None else value

    def optional_fraction(self, key: str) -> float | None:
        value = self.optional_number(key)
        if value is not None and not 0.0 <= value <= 1.0:
            raise spec_error(self.path_of(key), "must be between 0 and 1", "e.g. 0.1 for 10%")
        return value

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self._raw(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise spec_error(self.path_of(key), "must be true or false", "write true or false")
        return value

    def mapping(self, key: str, *, required: bool = False) -> Node:
        return Node(self._raw(key, required), self.path_of(key))

    def sequence(self, key: str, *, required: bool = False) -> list[Any]:
        value = self._raw(key, required)
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            raise spec_error(self.path_of(key), "must be a list", "write it as a YAML list")
        return list(value)

    def reject_unknown(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                raise spec_error(
                    self.path_of(str(key)),
                    "is not a known key",
                    f"remove it or use one of {', '.join(sorted(allowed))}{did_you_mean(str(key), allowed)}",
                )
