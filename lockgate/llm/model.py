"""A Hugging Face causal language model loaded from a ``save_pretrained`` folder, and its one
decoding step over a batch of sequences of different lengths.

The step recomputes each sequence in full, left-padded into one batch with an attention mask and
position ids that skip the padding, and returns each sequence's next token. Why not a KV cache
per sequence: a cache makes each step cheaper, but sequences that join and leave a running batch
need their caches padded, stacked and cut at every change of membership, code that is easy to get
subtly wrong; on a CPU with the short contexts of a small model the full pass costs little more,
and the padded pass is exactly the model's own forward, so it is correct by construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lockgate.errors import UserError
from lockgate.llm.sampling import choose_token

__all__ = ["CausalModel"]


class CausalModel:
    """The model of one folder and its tokenizer (the same folder unless ``tokenizer_path``, as in
    an MLflow ``transformers`` model); ``load`` reads them (safetensors only: no pickle
    is ever unpickled), ``step`` is called from one thread at a time."""

    def __init__(self, path: Path, *, tokenizer_path: Path | None = None) -> None:
        self.path = path
        self.tokenizer_path = tokenizer_path or path
        self.tokenizer: Any = None
        self.model: Any = None
        self.context = 0
        self.eos_token_id: int | None = None

    def load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not (self.path / "model.safetensors").is_file() and not any(self.path.glob("*.safetensors")):
            raise UserError(
                f"'{self.path}' has no safetensors weights; lockgate does not unpickle model files",
                hint="save the model with save_pretrained(..., safe_serialization=True)",
            )
        self.tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_path, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.path, local_files_only=True, use_safetensors=True
        )
        self.model.eval()
        config = self.model.config
        context = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
        self.context = int(context or 2048)
        self.eos_token_id = self.tokenizer.eos_token_id

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids and self.tokenizer.bos_token_id is not None:
            ids = [self.tokenizer.bos_token_id]  # an empty prompt starts from the beginning token
        return ids

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def chat_template(self) -> str | None:
        template = getattr(self.tokenizer, "chat_template", None)
        return template if isinstance(template, str) and template else None

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    def step(
        self, sequences: list[list[int]], choosers: list[tuple[float, float, torch.Generator]]
    ) -> list[int]:
        """The next token of each sequence: one forward pass over the left-padded batch, then
        each row's token picked with its own ``(temperature, top_p, generator)``."""
        longest = max(len(s) for s in sequences)
        pad = self.eos_token_id if self.eos_token_id is not None else 0
        input_ids = torch.tensor([[pad] * (longest - len(s)) + s for s in sequences])
        mask = torch.tensor([[0] * (longest - len(s)) + [1] * len(s) for s in sequences])
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits[
                :, -1, :
            ]
        return [
            choose_token(row, temperature, top_p, generator)
            for row, (temperature, top_p, generator) in zip(logits, choosers, strict=True)
        ]
