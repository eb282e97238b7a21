"""Shared fixtures: every test runs with its own LOCKGATE_HOME and no stray MLflow settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def lockgate_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh LOCKGATE_HOME in a temporary directory, with MLflow pointed at it."""
    home = tmp_path / ".lockgate"
    monkeypatch.setenv("LOCKGATE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    yield home
