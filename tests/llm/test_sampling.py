"""Picking tokens for a whole batch at once: greedy rows, seeded rows, the distribution, top_p."""

from __future__ import annotations

import math
import random

import torch

from lockgate.llm.sampling import Chooser, choose_tokens

PROBS = [0.2, 0.3, 0.5]
LOGITS = torch.tensor([math.log(p) for p in PROBS])


def _draws(n: int, *, top_p: float = 1.0, temperature: float = 1.0, seed: int = 0) -> list[int]:
    generator = random.Random(seed)
    chooser = Chooser(temperature, top_p, generator)
    return [choose_tokens(LOGITS.unsqueeze(0), [chooser])[0] for _ in range(n)]


def test_temperature_zero_is_the_argmax_of_each_row() -> None:
    logits = torch.tensor([[0.1, 2.0, 0.3], [5.0, 1.0, 0.0]])
    greedy = Chooser(0.0, 1.0, random.Random(0))
    assert choose_tokens(logits, [greedy, greedy]) == [1, 0]


def test_sampling_follows_the_softmax() -> None:
    draws = _draws(6000)
    for token, p in enumerate(PROBS):
        assert abs(draws.count(token) / len(draws) - p) < 0.03


def test_top_p_keeps_the_smallest_set_that_reaches_it() -> None:
    assert set(_draws(500, top_p=0.6)) == {2, 1}  # 0.5, then 0.3 reaches 0.6
    assert set(_draws(200, top_p=0.5)) == {2}


def test_a_seeded_row_picks_the_same_tokens_whatever_its_neighbours() -> None:
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))
    alone = [choose_tokens(logits[1:2], [Chooser(1.0, 0.9, random.Random(42))])[0]]
    neighbours = [Chooser(0.0, 1.0, random.Random(1)), Chooser(1.0, 0.9, random.Random(42))]
    neighbours.append(Chooser(0.7, 1.0, random.Random(7)))
    assert choose_tokens(logits, neighbours)[1] == alone[0]
    assert _draws(20, seed=3) == _draws(20, seed=3)


def test_every_row_sampling_picks_what_each_row_picks_alone() -> None:
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(2))
    settings = [(1.0, 1.0), (0.7, 1.0), (1.0, 0.8), (1.3, 0.5)]

    def chooser(row: int) -> Chooser:
        temperature, top_p = settings[row]
        return Chooser(temperature, top_p, random.Random(100 + row))

    alone = [choose_tokens(logits[row : row + 1], [chooser(row)])[0] for row in range(4)]
    assert choose_tokens(logits, [chooser(row) for row in range(4)]) == alone
    plain = [
        choose_tokens(logits[row : row + 1], [Chooser(1.0, 1.0, random.Random(row))])[0] for row in range(4)
    ]
    assert choose_tokens(logits, [Chooser(1.0, 1.0, random.Random(row)) for row in range(4)]) == plain


def test_a_temperature_sharpens_the_distribution() -> None:
    cold = _draws(3000, temperature=0.5)
    assert abs(cold.count(2) / len(cold) - 0.25 / (0.04 + 0.09 + 0.25)) < 0.03  # p^2 renormalised
