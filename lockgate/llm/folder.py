"""Whether a folder holds a causal language model (read without importing torch)."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["is_causal_lm_folder"]

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def is_causal_lm_folder(path: Path) -> bool:
    """Whether ``path`` is a ``save_pretrained`` folder of a causal language model (its
    ``config.json`` names a ``...ForCausalLM`` or ``...LMHeadModel`` architecture)."""
    config = path / "config.json"
    if not config.is_file():
        return False
    try:
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return False
    return any(isinstance(a, str) and a.endswith(_CAUSAL_SUFFIXES) for a in architectures)
