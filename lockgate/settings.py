"""Where lockgate keeps its state, and where each setting came from.

Resolution is a pure function of the environment, the working directory and the team file, so
``lockgate info`` can say exactly which value is in force and why.

The team file, ``lockgate.toml`` in the project's root folder (``lockgate team init`` writes it), holds
what every teammate shares and nothing secret: the tracking server's URI and the experiment. The
environment wins over it; credentials only ever come from the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "TEAM_FILE",
    "Setting",
    "Settings",
    "current_settings",
    "find_team_file",
    "read_team_file",
    "resolve_settings",
]

DEFAULT_HOME = ".lockgate"
DEFAULT_EXPERIMENT = "lockgate"
TEAM_FILE = "lockgate.toml"


@dataclass(frozen=True)
class Setting:
    """One value in force and the place it came from (an environment variable or a default)."""

    value: str
    source: str


@dataclass(frozen=True)
class Settings:
    """The state locations lockgate uses.

    ``home`` holds SQLite files and artifacts on a laptop; ``tracking_uri`` is MLflow's tracking store
    (``MLFLOW_TRACKING_URI`` wins over the default under ``home``); ``registry_uri`` is MLflow's model
    registry, the tracking store unless ``MLFLOW_REGISTRY_URI`` says otherwise. ``data_root``
    (``LOCKGATE_DATA_ROOT``) is a folder holding copies of dataset files, looked in instead of where
    a snapshot recorded them, as ``--data-root`` does for one command.
    """

    home: Path
    tracking_uri: str
    registry_uri: str
    artifact_root: str
    experiment: str
    sources: Mapping[str, Setting] = field(default_factory=dict)
    project_root: Path | None = None
    data_root: Path | None = None

    @property
    def is_default_store(self) -> bool:
        """True when MLflow state lives in the SQLite file under ``home``.

        Decided by value, not by where the value came from: ``mlflow.set_tracking_uri`` exports
        ``MLFLOW_TRACKING_URI`` into this process's environment, so after the first connection the
        default URI is also "from the environment".
        """
        return self.tracking_uri == default_tracking_uri(self.home)


def default_tracking_uri(home: Path) -> str:
    """The MLflow store lockgate uses when nothing else is configured: a SQLite file in ``home``."""
    return f"sqlite:///{home / 'mlflow.db'}"


def find_team_file(cwd: Path) -> Path | None:
    """``lockgate.toml`` in ``cwd`` or the nearest folder above it, or None."""
    for folder in (cwd, *cwd.parents):
        candidate = folder / TEAM_FILE
        if candidate.is_file():
            return candidate
    return None


def read_team_file(path: Path) -> dict[str, Any]:
    """The ``[team]`` table of a team file; a UserError naming the file when it is not TOML."""
    from lockgate.errors import UserError

    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(
            f"team file '{path}' cannot be read: {exc}",
            hint="fix it, or write it again with `lockgate team init --force`",
        ) from None
    team = doc.get("team", {})
    return dict(team) if isinstance(team, dict) else {}


def resolve_settings(
    env: Mapping[str, str],
    cwd: Path,
    team: Mapping[str, Any] | None = None,
    team_file: Path | None = None,
) -> Settings:
    """Resolve settings from ``env`` (usually ``os.environ``) relative to ``cwd``; ``team`` is the
    ``[team]`` table of ``team_file`` (``lockgate.toml``), which the environment overrides."""
    sources: dict[str, Setting] = {}
    team = team or {}
    team_source = TEAM_FILE if team_file is None else str(team_file)

    raw_home = env.get("LOCKGATE_HOME")
    if raw_home:
        home = (cwd / Path(raw_home).expanduser()).resolve()
        sources["home"] = Setting(str(home), "LOCKGATE_HOME")
    else:
        home = (cwd / DEFAULT_HOME).resolve()
        sources["home"] = Setting(str(home), "default")

    raw_tracking = env.get("MLFLOW_TRACKING_URI")
    if raw_tracking:
        tracking_uri = raw_tracking
        sources["tracking_uri"] = Setting(tracking_uri, "MLFLOW_TRACKING_URI")
    elif team.get("tracking_uri"):
        tracking_uri = str(team["tracking_uri"])
        sources["tracking_uri"] = Setting(tracking_uri, team_source)
    else:
        tracking_uri = default_tracking_uri(home)
        sources["tracking_uri"] = Setting(tracking_uri, "default")

    raw_registry = env.get("MLFLOW_REGISTRY_URI")
    if raw_registry:
        registry_uri = raw_registry
        sources["registry_uri"] = Setting(registry_uri, "MLFLOW_REGISTRY_URI")
    else:
        registry_uri = tracking_uri
        sources["registry_uri"] = Setting(registry_uri, "same as tracking_uri")

    raw_artifacts = env.get("LOCKGATE_ARTIFACT_ROOT")
    if raw_artifacts:
        artifact_root = raw_artifacts
        sources["artifact_root"] = Setting(artifact_root, "LOCKGATE_ARTIFACT_ROOT")
    else:
        artifact_root = (home / "artifacts").as_uri()
        if tracking_uri == default_tracking_uri(home):
            sources["artifact_root"] = Setting(artifact_root, "default")
        else:  # a server puts artifacts where it is configured to; `lockgate info` asks it
            sources["artifact_root"] = Setting("where the tracking server puts them", "tracking server")

    if env.get("LOCKGATE_EXPERIMENT"):
        experiment = env["LOCKGATE_EXPERIMENT"]
        sources["experiment"] = Setting(experiment, "LOCKGATE_EXPERIMENT")
    elif team.get("experiment"):
        experiment = str(team["experiment"])
        sources["experiment"] = Setting(experiment, team_source)
    else:
        experiment = DEFAULT_EXPERIMENT
        sources["experiment"] = Setting(experiment, "default")
    project_root = team_file.parent if team_file is not None else None
    if project_root is not None:
        sources["project_root"] = Setting(str(project_root), team_source)
    data_root = (
        (cwd / Path(env["LOCKGATE_DATA_ROOT"]).expanduser()).resolve()
        if env.get("LOCKGATE_DATA_ROOT")
        else None
    )
    if data_root is not None:
        sources["data_root"] = Setting(str(data_root), "LOCKGATE_DATA_ROOT")

    return Settings(
        home=home,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        artifact_root=artifact_root,
        experiment=experiment,
        sources=sources,
        project_root=project_root,
        data_root=data_root,
    )


def current_settings() -> Settings:
    """Settings for this process: ``os.environ``, the current directory and its team file."""
    cwd = Path.cwd()
    team_file = find_team_file(cwd)
    team = read_team_file(team_file) if team_file is not None else None
    return resolve_settings(os.environ, cwd, team, team_file)
