"""Answers to a list of prompts from a generative model in this process, for offline evaluation.

The prompts go through the model's own :class:`~lockgate.llm.scheduler.DecodeScheduler` together, so
they share decoding steps as served requests do; decoding is greedy (temperature 0) with a seed, so the
same model and prompts give the same answers run after run, whichever prompts share a batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Protocol

from lockgate.errors import UserError
from lockgate.llm.params import ChatMessage, SamplingParams

__all__ = ["Generative", "answer_all", "load_generative"]


class Generative(Protocol):
    """What answering needs of a generative model (the contract :mod:`lockgate.serving.completions`
    codes against too)."""

    @property
    def context(self) -> int: ...

    def encode(self, prompt: str) -> list[int]: ...

    def chat_prompt(self, messages: tuple[ChatMessage, ...]) -> str: ...

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[object]: ...


def load_generative(path: Path) -> Generative:
    """The generative model in ``path`` (a ``save_pretrained`` causal LM folder, or an MLflow
    ``transformers`` model of one), loaded; a :class:`UserError` when ``path`` holds neither."""
    import yaml

    from lockgate.llm.folder import is_causal_lm_folder, mlflow_transformers_parts
    from lockgate.llm.runtime import GenerativePredictor

    parts: tuple[Path, Path] | None = None
    if is_causal_lm_folder(path):
        parts = (path, path)
    elif (path / "MLmodel").is_file():
        flavors = (yaml.safe_load((path / "MLmodel").read_text(encoding="utf-8")) or {}).get("flavors", {})
        transformers = flavors.get("transformers")
        if isinstance(transformers, dict):
            parts = mlflow_transformers_parts(path, transformers)
    if parts is None:
        raise UserError(
            f"'{path}' is not a generative model",
            hint="give a save_pretrained causal language model (safetensors) or an MLflow transformers "
            "model of one",
        )
    predictor = GenerativePredictor(parts[0], tokenizer_path=parts[1])
    predictor.load()
    return predictor


def answer_all(
    model: Generative,
    prompts: Sequence[str],
    *,
    max_tokens: int,
    seed: int,
    stop: Sequence[str] = (),
    is_chat: bool = False,
    names: Sequence[str] | None = None,
) -> list[str]:
    """The model's greedy answer to each prompt, in order. ``is_chat`` sends each prompt as one user
    message through the model's chat template. A prompt too long for the model's context is a
    :class:`UserError` naming it (``names[i]``, e.g. ``eval.jsonl line 3``)."""
    params = SamplingParams(
        max_tokens=max_tokens, temperature=0.0, stop=tuple(s for s in stop if s), seed=seed
    )
    texts = [model.chat_prompt((ChatMessage("user", p),)) if is_chat else p for p in prompts]
    ids = [model.encode(text) for text in texts]
    for index, prompt_ids in enumerate(ids):
        if len(prompt_ids) + max_tokens > model.context:
            name = names[index] if names is not None else f"prompt {index + 1}"
            raise UserError(
                f"{name}: the prompt has {len(prompt_ids)} tokens and max_tokens is {max_tokens}, "
                f"together over the model's context of {model.context}",
                hint="shorten the example or lower max_tokens",
            )
    return asyncio.run(_answer_all(model, ids, params))


async def _answer_all(model: Generative, ids: list[list[int]], params: SamplingParams) -> list[str]:
    async def one(prompt_ids: list[int]) -> str:
        return "".join([getattr(chunk, "text", "") async for chunk in model.generate(prompt_ids, params)])

    try:
        return list(await asyncio.gather(*(one(prompt_ids) for prompt_ids in ids)))
    finally:
        stop = getattr(model, "stop", None)
        if stop is not None:
            await stop()  # the scheduler's task belongs to this event loop, which ends here
