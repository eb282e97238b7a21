"""The public API of lockgate.llm is a decision: this test pins it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lockgate.llm


def test_public_names_are_pinned() -> None:
    assert sorted(lockgate.llm.__all__) == sorted(
        [
            "CausalModel",
            "ChatMessage",
            "Chunk",
            "DecodeScheduler",
            "DecodeStats",
            "GenerativePredictor",
            "SamplingParams",
            "Usage",
            "build_tiny_model",
            "is_causal_lm_folder",
        ]
    )
    for name in lockgate.llm.__all__:
        assert getattr(lockgate.llm, name) is not None


def test_the_server_does_not_import_torch_until_a_generative_model_loads() -> None:
    code = "import sys, lockgate.serving.app, lockgate.llm; print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == "False"
