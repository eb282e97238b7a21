"""One served model version: its predictor, its batcher and the statistics a rollout decides on."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from lockgate.errors import LockgateError, UserError, ValidationError
from lockgate.serving.batcher import Batcher, BatchPolicy
from lockgate.serving.predictor import Predictor
from lockgate.serving.protocol import InferenceRequest, ModelInput, Outputs
from lockgate.serving.signature import FieldSpec, output_fields
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.generation import GenerationStats
from lockgate.stats.units import UNITS

__all__ = ["Execution", "ServingPolicy", "Variant"]

Execution = Literal["auto", "thread", "inline"]

# Below this median batch time the model runs on the event loop: a thread hand-off costs more.
_INLINE_BELOW_MS = 0.25
_FLUSH_EVERY = 256


@dataclass(frozen=True)
class ServingPolicy:
    """Per-model batching settings; ``execution="auto"`` picks inline or thread from a warm-up."""

    max_batch_size: int = 32
    max_wait_ms: float = 0.0
    max_queue: int = 1024
    execution: Execution = "auto"

    def batch_policy(self, *, is_inline: bool) -> BatchPolicy:
        return BatchPolicy(self.max_batch_size, self.max_wait_ms, self.max_queue, is_inline)


@dataclass
class Variant:
    """A model version ready to serve: ``key`` names it in the app (default: the model name)."""

    model_name: str
    model_version: str
    predictor: Predictor
    policy: ServingPolicy = field(default_factory=ServingPolicy)
    key: str = ""
    warmup_ms: float | None = None
    batcher: Batcher | None = None
    # the outputs the model really returns (from the warm-up probe or the first answer): what
    # metadata lists, since an MLflow signature names them differently or not at all
    returned_outputs: tuple[FieldSpec, ...] | None = None
    _stats: VariantStats = field(default_factory=VariantStats)
    _latencies_ms: list[float] = field(default_factory=list)
    _errors: list[bool] = field(default_factory=list)
    _units: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.key:
            self.key = self.model_name

    @property
    def is_inline(self) -> bool:
        if self.policy.execution == "inline":
            return True
        if self.policy.execution == "thread":
            return False
        return self.warmup_ms is not None and self.warmup_ms < _INLINE_BELOW_MS

    def _probe(self) -> ModelInput | None:
        sig = self.predictor.signature
        if sig.kind == "columns" and sig.is_all_numeric:
            return np.zeros((1, len(sig.inputs)), dtype=sig.numeric_dtype)
        if sig.kind == "tensor":
            shape = tuple(d if d > 0 else 1 for d in sig.tensor.shape)
            return np.zeros((1, *shape), dtype=sig.tensor.dtype)
        if sig.kind == "text":
            return np.array(["a sentence to warm the model up"], dtype=object)
        return None

    def warm_up(self, rounds: int = 20) -> None:
        """Call the model on a probe a few times (first calls are slow) and time it.

        Runs in the loading thread, before any request. A model that cannot score the probe (zeros
        may be out of its domain) is served in a thread: nothing is concluded from the failure.
        """
        probe = self._probe()
        if probe is None:
            return
        timings: list[float] = []
        for _ in range(rounds):
            started = time.perf_counter()
            try:
                outputs = self.predictor.predict(probe)
            # any failure here only means "unknown speed": the model is served in a thread
            except Exception:  # noqa: BLE001
                return
            timings.append((time.perf_counter() - started) * 1000.0)
            if self.returned_outputs is None:
                self.returned_outputs = output_fields(outputs)
        self.warmup_ms = min(timings)  # the least disturbed call: other load only adds to it

    def start(self, on_batch: Callable[[int, float], None] | None = None) -> None:
        """Start the batcher (inside the running event loop)."""
        if self.batcher is None:
            self.batcher = Batcher(
                self.predictor.predict,
                self.policy.batch_policy(is_inline=self.is_inline),
                on_batch=on_batch,
                name=self.key,
            )
        self.batcher.start()

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()
        stop_predictor = getattr(self.predictor, "stop", None)  # a generative model's scheduler
        if stop_predictor is not None:
            await stop_predictor()

    async def infer(self, request: InferenceRequest) -> Outputs:
        """Score one decoded request through the batcher.

        A model that raises ``ValueError``/``TypeError``/``KeyError`` on an input that passed the
        signature check rejected the input: that is the client's 422, not a server fault.
        """
        if self.batcher is None:
            raise UserError(f"model '{self.key}' is not started")
        try:
            outputs = await self.batcher.submit(request.inputs, request.n_rows)
        except LockgateError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise ValidationError(
                f"model '{self.model_name}' rejected the input: {exc}",
                hint="check the values against GET /v2/models/{name} (the signature)",
            ) from None
        if self.returned_outputs is None:
            self.returned_outputs = output_fields(outputs)
        return outputs

    def record(self, latency_ms: float, *, is_error: bool, unit: int | None = None) -> None:
        """Count one answered request in its analysis unit (none: the next unit in turn; cheap:
        folded into the statistics every few hundred)."""
        self._latencies_ms.append(latency_ms)
        self._errors.append(is_error)
        self._units.append((self._stats.requests + len(self._units)) % UNITS if unit is None else unit)
        if len(self._latencies_ms) >= _FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if self._latencies_ms:
            self._stats.record_many(self._latencies_ms, self._errors, self._units)
            self._latencies_ms = []
            self._errors = []
            self._units = []

    def record_outcome(
        self, *, value: float | None = None, label: bool | None = None, unit: int | None = None
    ) -> None:
        """Count one outcome of a request this variant answered (feedback, joined by request id),
        in that request's analysis unit.

        A ``value`` goes to the outcome moments (a score, revenue), a ``label`` to the conversions.
        """
        where = self._stats.outcome.count + self._stats.conversions.trials if unit is None else unit
        if value is not None:
            self._stats.outcome.add(value)
        if label is not None:
            self._stats.conversions.add(label)
        self._stats.units.record_outcome(where % UNITS, value=value, label=label)

    @property
    def generation(self) -> GenerationStats | None:
        """The generation counters so far (None until a generation was counted)."""
        return self._stats.generation

    def generation_stats(self) -> GenerationStats:
        """The generation counters (a generative model's), made at its first generation."""
        stats = self._stats.generation
        if stats is None:
            stats = self._stats.generation = GenerationStats()
        return stats

    def restart_counters(self) -> None:
        """Count from zero: the model now serves under another variant name, whose counters are
        its own (a promoted candidate becoming the next rollout's baseline)."""
        self._stats = VariantStats()
        self._latencies_ms, self._errors, self._units = [], [], []

    def snapshot(self) -> VariantStats:
        """A copy of everything counted so far (requests, errors, latency, outcomes)."""
        self._flush()
        return self._stats.copy()

    def metadata(self) -> dict[str, Any]:
        """The Open Inference Protocol model metadata document."""
        sig = self.predictor.signature
        return {
            "name": self.model_name,
            "versions": [self.model_version],
            "platform": self.predictor.runtime,
            "inputs": [spec.to_dict() for spec in sig.inputs],
            "outputs": [
                spec.to_dict()
                for spec in (sig.outputs if self.returned_outputs is None else self.returned_outputs)
            ],
            "parameters": {"signature_kind": sig.kind, "variant": self.key},
        }

    def with_policy(self, policy: ServingPolicy) -> Variant:
        return replace(self, policy=policy, batcher=None)
