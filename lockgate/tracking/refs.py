"""Parsing and validating the names users type: ``NAME``, ``NAME@VERSION``, ``NAME@ALIAS``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lockgate.errors import UserError

__all__ = ["Ref", "dataset_label", "parse_ref", "validate_artifact_path", "validate_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$")
_ARTIFACT_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def validate_name(name: str, what: str = "name") -> str:
    """A model or dataset name: letters, digits, '.', '_', '-'; starts with a letter or digit."""
    if not _NAME.match(name) or ".." in name:
        raise UserError(
            f"{what} '{name}' is not valid",
            hint="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(for example 'fraud-detector')",
        )
    return name


def validate_artifact_path(path: str, what: str = "artifact path") -> str:
    """A path inside a run's artifacts: ``/``-separated names of letters, digits, '.', '_', '-'.

    No segment may be empty, start with '.' (so no ``..``), or hold '%', '\\', '#' or ':', so the
    name cannot climb out of the run's folder however a store decodes it.
    """
    segments = path.split("/")
    if not path or len(path) > 512 or not all(_ARTIFACT_SEGMENT.match(s) for s in segments):
        raise UserError(
            f"{what} '{path[:200]}' is not valid",
            hint="use names of letters, digits, '.', '_' or '-' separated by '/', with no '..' and no "
            "leading '/' (for example 'model' or 'plots/roc')",
        )
    return path


def validate_alias(alias: str) -> str:
    """An alias such as ``champion``: a letter or '_' first; not ``latest`` or ``vN`` (MLflow's rule)."""
    if not _ALIAS.match(alias) or alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise UserError(
            f"alias '{alias}' is not valid",
            hint="use letters, digits, '_' or '-', starting with a letter (e.g. 'champion'); "
            "'latest' and 'v<number>' are reserved",
        )
    return alias


@dataclass(frozen=True)
class Ref:
    """``name`` plus an optional selector: a version number or an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(text: str, what: str = "name", *, allow_alias: bool = True) -> Ref:
    """Parse ``NAME``, ``NAME@3``, ``NAME@v3`` or ``NAME@champion``."""
    name, sep, selector = text.strip().partition("@")
    validate_name(name, what)
    if not sep:
        return Ref(name)
    digits = selector[1:] if selector[:1] in ("v", "V") and selector[1:].isdigit() else selector
    if digits.isdigit():
        version = int(digits)
        if version < 1:
            raise UserError(f"version {version} in '{text}' must be 1 or more", hint="versions start at 1")
        return Ref(name, version=version)
    if not allow_alias:
        raise UserError(
            f"'{selector}' in '{text}' is not a version number",
            hint=f"write {what} versions as NAME@VERSION, for example '{name}@1'",
        )
    return Ref(name, alias=validate_alias(selector))


def dataset_label(link: Mapping[str, Any]) -> str:
    """How a run's recorded dataset link reads: ``name@3``; ``name (changed from @3)`` for files that
    were not the version they were meant to be; ``name (unregistered)`` for files of no version."""
    if link.get("version") is not None:
        return f"{link.get('name')}@{link.get('version')}"
    if link.get("changed_from") is not None:
        return f"{link.get('name')} (changed from @{link.get('changed_from')})"
    return f"{link.get('name')} (unregistered)"
