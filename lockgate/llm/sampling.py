"""Picking the next token from a row of logits: greedy at temperature 0, otherwise sampling
(nucleus when ``top_p`` < 1) from the request's own seeded generator, so a seeded request gives
the same tokens whichever requests share its batch."""

from __future__ import annotations

import torch

__all__ = ["choose_token"]


def choose_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    """The next token of one sequence from its last position's ``logits`` (one row)."""
    if temperature == 0.0:
        return int(torch.argmax(logits).item())
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        sorted_probs[before >= top_p] = 0.0  # keep the smallest set whose mass reaches top_p
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator).item())
