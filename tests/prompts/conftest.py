"""A tiny model trained long enough (60 steps, ~15 s) that its greedy answer depends on the prompt, so a
prompt version can be worse than another on the same model; built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lockgate.llm.tiny import build_tiny_model


@pytest.fixture(scope="session")
def prompt_sensitive_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2-60"), steps=60)
