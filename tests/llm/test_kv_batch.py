"""The kept-keys-and-values batch against the model's own full recomputation, while sequences
join and leave it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lockgate.llm.kv_batch import KVBatch, left_padded
from lockgate.llm.model import CausalModel


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> CausalModel:
    loaded = CausalModel(tiny_model)
    loaded.load()
    return loaded


def _recomputed(model: CausalModel, sequences: list[list[int]]) -> torch.Tensor:
    """The last position's logits from a full, left-padded forward pass (no cache)."""
    ids, mask = left_padded(sequences, 0)
    with torch.inference_mode():
        out = model.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0))
    return out.logits[:, -1, :]


def test_logits_match_full_recomputation_as_sequences_join_and_leave(model: CausalModel) -> None:
    batch = KVBatch(model)
    prompts = ["user: What is a canary?", "Hello", "a much longer prompt about rollbacks " * 2, "lockgate"]
    sequences = {key: model.encode(text) for key, text in enumerate(prompts)}
    active = [0, 1]
    sizes = []
    for step in range(24):
        if step == 4:
            active.append(2)  # joins with a longer prompt than the running rows
        if step == 9:
            active.remove(2)  # the longest leaves: its padding columns are cut
        if step == 12:
            active.remove(0)
        if step == 15:
            active.append(3)
        given = [sequences[key] for key in active]
        logits = batch.logits(list(active), given)
        torch.testing.assert_close(logits, _recomputed(model, given), atol=1e-4, rtol=1e-4)
        sizes.append(batch.size)
        for key, row in zip(active, logits, strict=True):
            sequences[key].append(int(row.argmax()))
    assert sizes[3:5] == [2, 3] and sizes[12] == 1 and sizes[-1] == 2


def test_a_kept_sequence_must_grow_by_one_token_per_step(model: CausalModel) -> None:
    batch = KVBatch(model)
    tokens = model.encode("Hello there")
    batch.logits(["a"], [tokens])
    with pytest.raises(ValueError, match="did not grow by one token"):
        batch.logits(["a"], [[*tokens, 1, 2]])
