"""The tiny model the project trains itself, built once per test session (a few seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lockgate.llm.tiny import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"), steps=8)
