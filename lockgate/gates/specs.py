"""The settings of each built-in check kind, as they are written under ``checks:`` in ``lockgate.yaml``.

Strict pydantic models: a number must be written as a number and an unknown key is an error, so a
typo (``min_delta`` for ``min_absolute_change``) stops the gate instead of silently loosening it.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from lockgate.config import Schema
from lockgate.gates.metrics import METRICS

__all__ = [
    "BudgetsSpec",
    "ChampionSpec",
    "DataSpec",
    "DriftSpec",
    "EmbeddingRetrievalSpec",
    "MetricSpec",
    "PromptSpec",
    "ProvenanceSpec",
    "SignatureSpec",
    "SliceSpec",
    "Spec",
    "TextClassificationSpec",
]


class Spec(Schema):
    """Base of every check kind's settings: strict types, no unknown keys, immutable, finite numbers."""


def _known_metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}'; known metrics are {', '.join(sorted(METRICS))}")
    return name


class MetricSpec(Spec):
    """A metric on the holdout, in the terms of MLflow's ``MetricThreshold``.

    ``threshold``: the candidate's value must be at least this (at most, when lower is better).
    ``min_absolute_change`` / ``min_relative_change``: the candidate must beat the baseline by at
    least this much (a positive number; relative to ``abs(baseline)``, between 0 and 1).
    """

    metric: str
    threshold: float | None = None
    min_absolute_change: float | None = Field(default=None, gt=0)
    min_relative_change: float | None = Field(default=None, gt=0, le=1)
    greater_is_better: bool | None = None

    _metric = field_validator("metric")(_known_metric)

    @model_validator(mode="after")
    def _one_threshold(self) -> Self:
        if self.threshold is None and self.min_absolute_change is None and self.min_relative_change is None:
            raise ValueError("give at least one of threshold, min_absolute_change, min_relative_change")
        return self


class ChampionSpec(Spec):
    """Non-inferiority against the baseline on the same rows: worse by at most ``margin``.

    ``mcnemar`` (exact binomial on discordant pairs) is for accuracy and error rate; ``bootstrap``
    (paired percentile interval, seeded) works for any metric.
    """

    metric: str = "accuracy"
    test: Literal["mcnemar", "bootstrap"] = "bootstrap"
    margin: float = Field(default=0.0, ge=0)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    resamples: int = Field(default=1000, ge=100, le=100_000)

    _metric = field_validator("metric")(_known_metric)

    @model_validator(mode="after")
    def _mcnemar_reads_labels(self) -> Self:
        if self.test == "mcnemar" and self.metric not in ("accuracy", "error_rate"):
            raise ValueError(
                f"test 'mcnemar' compares accuracy; use test: bootstrap for metric '{self.metric}'"
            )
        return self


class SliceSpec(Spec):
    """Rows picked by a pandas ``query`` rule, or one slice per value of ``column``."""

    name: str | None = None
    column: str | None = None
    query: str | None = None
    metric: str = "accuracy"
    margin: float = Field(default=0.05, ge=0)
    threshold: float | None = None
    min_rows: int = Field(default=30, ge=1)
    max_values: int = Field(default=20, ge=1, le=1000)

    _metric = field_validator("metric")(_known_metric)

    @model_validator(mode="after")
    def _one_rule(self) -> Self:
        if (self.column is None) == (self.query is None):
            raise ValueError("give exactly one of column, query")
        return self

    @property
    def label(self) -> str:
        return self.name or self.query or str(self.column)


class SignatureSpec(Spec):
    """The candidate's input schema must accept what the champion's accepted."""

    require_signature: bool = True


class BudgetsSpec(Spec):
    """Single-request p95 latency (median over repeats, in-process) and artifact size."""

    latency_p95_ms: float | None = Field(default=None, gt=0)
    size_bytes: int | None = Field(default=None, gt=0)
    requests: int = Field(default=30, ge=20, le=10_000)
    repeats: int = Field(default=3, ge=1, le=100)
    warmup: int = Field(default=3, ge=0, le=1000)

    @model_validator(mode="after")
    def _one_budget(self) -> Self:
        if self.latency_p95_ms is None and self.size_bytes is None:
            raise ValueError("give at least one of latency_p95_ms, size_bytes")
        return self


class DataSpec(Spec):
    """The holdout against the reference (training) dataset's profile: schema, nulls, ranges, skew."""

    check_schema: bool = True
    max_null_increase: float = Field(default=0.0, ge=0, le=1)
    range_tolerance: float | None = Field(default=0.1, ge=0)
    max_mean_shift_std: float | None = Field(default=0.5, gt=0)
    max_std_ratio: float | None = Field(default=2.0, gt=1)


class DriftSpec(Spec):
    """Candidate predictions against the champion's on the holdout: PSI and the KS statistic."""

    max_psi: float = Field(default=0.2, gt=0)
    max_ks: float = Field(default=0.2, gt=0, le=1)
    bins: int = Field(default=10, ge=2, le=100)


class ProvenanceSpec(Spec):
    """What the candidate's training run must have recorded."""

    require_commit: bool = True
    require_clean: bool = True
    require_datasets: bool = True
    require_verified: bool = True


class TextClassificationSpec(Spec):
    """Accuracy of a text classifier on a small evaluation set: the bundled one or a CSV file.

    ``threshold``: the candidate's accuracy must be at least this. ``margin``: it may be below the
    baseline's by at most this much (checked when there is a baseline).
    """

    evalset: str = "sentiment"
    file: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    threshold: float | None = Field(default=None, ge=0, le=1)
    margin: float = Field(default=0.0, ge=0, le=1)


class EmbeddingRetrievalSpec(Spec):
    """recall@k of a sentence encoder on generated query/document pairs (seeded by the policy's seed).

    The model is called on a list of texts and must return one embedding row per text.
    """

    k: int = Field(default=5, ge=1, le=80)
    pairs: int = Field(default=60, ge=10, le=80)
    threshold: float | None = Field(default=None, ge=0, le=1)
    margin: float = Field(default=0.0, ge=0, le=1)


class PromptSpec(Spec):
    """A prompt version on an evaluation set against the champion prompt.

    ``examples``: a JSON-lines file (relative to the policy file). ``responder``: the model call, a
    Python entry ``module:function`` taking the filled prompt and returning the answer; the default
    echoes the filled prompt (offline, deterministic). ``scoring``: ``exact`` or ``similarity``
    (cosine of the bundled MiniLM's embeddings, a hit at ``min_similarity`` or above).
    """

    examples: str
    responder: str = "lockgate.prompts.responders:echo"
    scoring: Literal["exact", "similarity"] = "exact"
    min_similarity: float = Field(default=0.8, gt=0, le=1)
    threshold: float | None = Field(default=None, ge=0, le=1)
    margin: float = Field(default=0.0, ge=0, le=1)

    @field_validator("responder")
    @classmethod
    def _entry(cls, value: str) -> str:
        module, colon, function = value.partition(":")
        if not colon or not module or not function.isidentifier():
            raise ValueError(f"'{value}' is not a Python entry; write module.path:function")
        return value
