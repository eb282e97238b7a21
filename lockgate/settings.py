"""Where lockgate keeps its state, and where each setting came from.

Resolution is a pure function of the environment and the working directory, so ``lockgate info``
can say exactly which value is in force and why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Setting", "Settings", "current_settings", "resolve_settings"]

DEFAULT_HOME = ".lockgate"
DEFAULT_EXPERIMENT = "lockgate"


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
    registry, the tracking store unless ``MLFLOW_REGISTRY_URI`` says otherwise.
    """

    home: Path
    tracking_uri: str
    registry_uri: str
    artifact_root: str
    experiment: str
    sources: Mapping[str, Setting] = field(default_factory=dict)

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


def resolve_settings(env: Mapping[str, str], cwd: Path) -> Settings:
    """Resolve settings from ``env`` (usually ``os.environ``) relative to ``cwd``."""
    sources: dict[str, Setting] = {}

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
        sources["artifact_root"] = Setting(artifact_root, "default")

    experiment = env.get("LOCKGATE_EXPERIMENT") or DEFAULT_EXPERIMENT
    sources["experiment"] = Setting(
        experiment, "LOCKGATE_EXPERIMENT" if env.get("LOCKGATE_EXPERIMENT") else "default"
    )

    return Settings(
        home=home,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        artifact_root=artifact_root,
        experiment=experiment,
        sources=sources,
    )


def current_settings() -> Settings:
    """Settings for this process: ``os.environ`` and the current directory."""
    return resolve_settings(os.environ, Path.cwd())
