"""The generative runtime: a causal language model served behind the
:class:`~lockgate.serving.predictor.Predictor` protocol, generating through the
:class:`~lockgate.llm.scheduler.DecodeScheduler` (decoding in a thread of this process) or the
:class:`~lockgate.llm.engine.ProcessDecoder` (decoding in a process of its own; ``lockgate serve``'s
default, ``--decode-engine``).

``lockgate serve FOLDER`` picks it for a ``save_pretrained`` folder of a causal language model,
or an MLflow ``transformers`` model of one (:func:`~lockgate.llm.folder.mlflow_transformers_parts`).
The OpenAI-compatible endpoints (:mod:`lockgate.serving.completions`) call :meth:`generate`; the
tensor endpoints (``/invocations``, ``/v2/.../infer``) do not apply to it and say so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from lockgate.errors import UserError
from lockgate.llm.chat import plain_chat_prompt
from lockgate.llm.engine import ProcessDecoder
from lockgate.llm.model import CausalModel
from lockgate.llm.params import ChatMessage, DecodeEngine, SamplingParams, check_decode_engine
from lockgate.llm.scheduler import Chunk, DecodeScheduler
from lockgate.serving.protocol import ModelInput, Outputs
from lockgate.serving.signature import Signature

__all__ = ["GenerativePredictor"]


class GenerativePredictor:
    """A causal language model that generates text for many requests at once."""

    runtime = "transformers-generate"
    is_table_output = False
    is_generative = True

    def __init__(
        self,
        path: Path,
        *,
        tokenizer_path: Path | None = None,
        max_batch_size: int = 16,
        threads: int | None = None,
        engine: DecodeEngine = "thread",
    ) -> None:
        self.path = path
        self.engine = check_decode_engine(engine)
        # torch's intra-op threads (process-wide): `lockgate serve --threads`, 1 by default. A
        # small model's step gains nothing from more, and spinning pool threads would take the
        # CPU the event loop needs to stream the answers.
        self.threads = threads
        self.max_batch_size = max_batch_size
        self.signature = Signature("any")
        self.primary_output: str | None = None
        self.model = CausalModel(path, tokenizer_path=tokenizer_path)
        self.scheduler: DecodeScheduler | ProcessDecoder
        if engine == "process":
            self.scheduler = ProcessDecoder(self.model, max_batch_size=max_batch_size, threads=threads)
        else:
            self.scheduler = DecodeScheduler(self.model, max_batch_size=max_batch_size)

    @property
    def context(self) -> int:
        return self.model.context

    def load(self) -> None:
        if isinstance(self.scheduler, ProcessDecoder):
            self.model.load(weights=False)  # the decoding process loads the model
            self.scheduler.load()
            return
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        self.model.load()

    def predict(self, inputs: ModelInput) -> Outputs:
        raise UserError(
            "this model generates text: it is not called with tensors",
            hint="use POST /v1/completions or /v1/chat/completions",
        )

    def encode(self, prompt: str) -> list[int]:
        return self.model.encode(prompt)

    def chat_prompt(self, messages: tuple[ChatMessage, ...]) -> str:
        """The prompt for ``messages``: the tokenizer's chat template, or lockgate's plain one."""
        if self.model.chat_template() is not None:
            return self.model.apply_chat_template([{"role": m.role, "content": m.content} for m in messages])
        return plain_chat_prompt(messages)

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[Chunk]:
        return self.scheduler.generate(prompt_ids, params)

    async def stop(self) -> None:
        await self.scheduler.stop()
