"""CausalModel: its fast decoding path gives exactly what the tokenizer's own decode gives."""

from __future__ import annotations

import random
from pathlib import Path

from lockgate.llm.model import CausalModel


def test_decode_is_the_tokenizers_decode_for_any_ids(tiny_model: Path) -> None:
    model = CausalModel(tiny_model)
    model.load(weights=False)
    assert model.model is None and model.context > 0
    generator = random.Random(0)
    special = [model.eos_token_id or 0]
    for _ in range(300):
        ids = [generator.randrange(model.tokenizer.vocab_size) for _ in range(generator.randrange(1, 40))]
        ids += special if generator.random() < 0.3 else []
        assert model.decode(ids) == model.tokenizer.decode(ids, skip_special_tokens=True)
