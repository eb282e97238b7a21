"""How alike two generated answers are in meaning: the bundled MiniLM's sentence embeddings.

The shadow mirror (:mod:`lockgate.serving.mirror`) compares a generative shadow's answers with the
primary's by the cosine of these embeddings, off the request path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["answer_embeddings"]


def answer_embeddings(texts: Sequence[str]) -> npt.NDArray[np.float64]:
    """Unit-length MiniLM embeddings, one row per text (the model loads at the first call, from the
    installed package, never downloaded; a UserError naming the extra when it is not installed)."""
    from lockgate.gates.encoder import minilm_encoder

    return minilm_encoder(texts)
