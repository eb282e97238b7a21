"""A read-only look at a SQLite MLflow registry, for commands that only list what it holds.

Importing MLflow and opening its store costs 2-3 s before a command does anything; listing the
registered models of a local SQLite registry needs three small tables. :func:`models_in` reads
them with the standard library, read-only, and answers None (the caller then asks MLflow's
client) whenever it is not sure to give the same answer: another kind of store, a schema without
the columns it reads, or a registry with several workspaces. It never writes: MLflow's tables
are written by MLflow alone. ``tests/cli/test_registry_index.py`` holds it to MLflow's answer.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["models_in"]

_DELETED_STAGE = "Deleted_Internal"  # MLflow keeps a deleted version's row under this stage
_COLUMNS = {
    "registered_models": {"name", "last_updated_time", "description"},
    "model_versions": {"name", "version", "current_stage"},
    "registered_model_aliases": {"name", "alias", "version"},
}


def _sqlite_path(uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or "?" in uri:
        return None
    path = Path(uri[len(prefix) :])
    return path if path.is_file() else None


def models_in(registry_uri: str) -> list[dict[str, Any]] | None:
    """Each registered model with its version count, latest version, aliases and last update
    (as :func:`lockgate.tracking.registry.list_models`), or None when only MLflow can tell."""
    path = _sqlite_path(registry_uri)
    if path is None:
        return None
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
            return _read(db)
    except sqlite3.Error:
        return None  # locked, half-migrated, not a database: MLflow's client says what is wrong


def _read(db: sqlite3.Connection) -> list[dict[str, Any]] | None:
    for table, needed in _COLUMNS.items():
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if not needed <= columns:
            return None
        if (
            "workspace" in columns
            # the table name is one of the three constants above, never input
            and db.execute(f"SELECT COUNT(DISTINCT workspace) FROM {table}").fetchone()[0] > 1  # noqa: S608
        ):
            return None
    models: dict[str, dict[str, Any]] = {}
    for name, updated_ms, description in db.execute(
        "SELECT name, last_updated_time, description FROM registered_models"
    ):
        models[name] = {
            "name": name,
            "versions": 0,
            "latest": None,
            "aliases": {},
            "updated_ms": int(updated_ms or 0),
            "description": description or "",
        }
    for name, count, latest in db.execute(
        "SELECT name, COUNT(*), MAX(CAST(version AS INTEGER)) FROM model_versions "
        "WHERE current_stage IS NULL OR current_stage != ? GROUP BY name",
        (_DELETED_STAGE,),
    ):
        if name in models:
            models[name].update(versions=int(count), latest=int(latest))
    for name, alias, version in db.execute(
        "SELECT name, alias, version FROM registered_model_aliases ORDER BY alias"
    ):
        if name in models:
            models[name]["aliases"][alias] = int(version)
    return sorted(models.values(), key=lambda m: str(m["name"]))
