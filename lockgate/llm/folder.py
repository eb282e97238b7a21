"""Whether a folder holds a causal language model, and where its parts are (read without
importing torch)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["is_causal_lm_folder", "mlflow_transformers_parts"]

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


def mlflow_transformers_parts(path: Path, flavor: Mapping[str, Any]) -> tuple[Path, Path] | None:
    """The model folder and tokenizer folder of an MLflow ``transformers`` model saved with its
    weights (``model_binary``, safetensors) when the model is a causal language model, or None."""
    model = path / str(flavor.get("model_binary") or "model")
    if not model.resolve().is_relative_to(path.resolve()):
        return None  # an MLmodel that points out of its own folder
    if not is_causal_lm_folder(model) or not any(model.glob("*.safetensors")):
        return None
    tokenizer = path / "components" / "tokenizer"
    return model, tokenizer if tokenizer.is_dir() else model
