"""Generative models: a causal language model served with batching at the decoding step.

- :mod:`~lockgate.llm.decoding`, :mod:`~lockgate.llm.params`, :mod:`~lockgate.llm.chat`: the pure
  decisions (stop strings across tokens, finish reasons, usage, request fields, the chat prompt).
- :mod:`~lockgate.llm.model`, :mod:`~lockgate.llm.sampling`: the model's one decoding step.
- :mod:`~lockgate.llm.scheduler`: continuous batching (join and leave between steps).
- :mod:`~lockgate.llm.runtime`: the runtime ``lockgate serve`` loads for such a folder.
- :mod:`~lockgate.llm.tiny`: the small model the project trains itself for tests and the demo.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lockgate.llm.decoding import Chunk, Usage
from lockgate.llm.folder import is_causal_lm_folder
from lockgate.llm.params import ChatMessage, SamplingParams
from lockgate.llm.tiny import build_tiny_model

if TYPE_CHECKING:
    from lockgate.llm.model import CausalModel
    from lockgate.llm.runtime import GenerativePredictor
    from lockgate.llm.scheduler import DecodeScheduler, DecodeStats

# these import torch: loaded when first used, so the server imports none of it for other models
_LAZY = {
    "CausalModel": "model",
    "GenerativePredictor": "runtime",
    "DecodeScheduler": "scheduler",
    "DecodeStats": "scheduler",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lockgate.llm' has no attribute '{name}'")
    return getattr(importlib.import_module(f"lockgate.llm.{module}"), name)


__all__ = [
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
