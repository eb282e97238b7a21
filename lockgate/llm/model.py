"""A Hugging Face causal language model loaded from a ``save_pretrained`` folder, with its tokenizer.

Decoding runs in :class:`~lockgate.llm.kv_batch.KVBatch`, which keeps each sequence's keys and
values between the steps of a running batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lockgate.errors import UserError

__all__ = ["CausalModel"]


class CausalModel:
    """The model of one folder and its tokenizer (the same folder unless ``tokenizer_path``, as in
    an MLflow ``transformers`` model); ``load`` reads them (safetensors only: no pickle
    is ever unpickled)."""

    def __init__(self, path: Path, *, tokenizer_path: Path | None = None) -> None:
        self.path = path
        self.tokenizer_path = tokenizer_path or path
        self.tokenizer: Any = None
        self.model: Any = None
        self.context = 0
        self.eos_token_id: int | None = None
        self._raw_decode: Any = None

    def load(self, *, weights: bool = True) -> None:
        """Read the tokenizer and the model (``weights=False``: the tokenizer and the configuration
        only, for a server whose decoding process holds the model)."""
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        if not (self.path / "model.safetensors").is_file() and not any(self.path.glob("*.safetensors")):
            raise UserError(
                f"'{self.path}' has no safetensors weights; lockgate does not unpickle model files",
                hint="save the model with save_pretrained(..., safe_serialization=True)",
            )
        self.tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_path, local_files_only=True)
        # the fast tokenizer's own decode when the transformers wrapper would return its text
        # unchanged (no clean-up of spaces): it runs for every sequence at every decoding step, and
        # the wrapper's argument handling cost as much as the decoding itself
        backend = getattr(self.tokenizer, "_tokenizer", None)
        cleans = getattr(self.tokenizer, "clean_up_tokenization_spaces", True)
        self._raw_decode = backend.decode if backend is not None and not cleans else None
        if weights:
            self.model = AutoModelForCausalLM.from_pretrained(
                self.path, local_files_only=True, use_safetensors=True
            )
            self.model.eval()
            config = self.model.config
        else:
            config = AutoConfig.from_pretrained(self.path, local_files_only=True)
        context = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
        self.context = int(context or 2048)
        self.eos_token_id = self.tokenizer.eos_token_id

    def encode(self, text: str) -> list[int]:
        # the tokenizer's own encode: calling the tokenizer builds a BatchEncoding (padding and
        # truncation checks, attention mask) around the same ids, several times the cost
        ids: list[int] = self.tokenizer.encode(text, add_special_tokens=False)
        if not ids and self.tokenizer.bos_token_id is not None:
            ids = [self.tokenizer.bos_token_id]  # an empty prompt starts from the beginning token
        return ids

    def decode(self, ids: list[int]) -> str:
        if self._raw_decode is not None:
            return str(self._raw_decode(ids, skip_special_tokens=True))
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def chat_template(self) -> str | None:
        template = getattr(self.tokenizer, "chat_template", None)
        return template if isinstance(template, str) and template else None

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
