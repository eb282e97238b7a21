"""The settings of each built-in check kind, as they are written under ``checks:`` in ``lockgate.yaml``.

Each lives in its kind's module of :mod:`lockgate.gates.checks`, beside its decision and its runner;
they are gathered here for the code and the docs that name them from one place.
"""

from __future__ import annotations

from lockgate.gates.checks.budgets import BudgetsSpec
from lockgate.gates.checks.champion import ChampionSpec
from lockgate.gates.checks.data import DataSpec
from lockgate.gates.checks.drift import DriftSpec
from lockgate.gates.checks.embedding_retrieval import EmbeddingRetrievalSpec
from lockgate.gates.checks.generation import EndpointSpec, GenerationSpec, JudgeSpec
from lockgate.gates.checks.lineage import ProvenanceSpec
from lockgate.gates.checks.metrics import MetricSpec
from lockgate.gates.checks.prompt import PromptSpec
from lockgate.gates.checks.signature import SignatureSpec
from lockgate.gates.checks.slices import SliceSpec
from lockgate.gates.checks.text_classification import TextClassificationSpec
from lockgate.gates.kinds import Spec

__all__ = [
    "BudgetsSpec",
    "ChampionSpec",
    "DataSpec",
    "DriftSpec",
    "EmbeddingRetrievalSpec",
    "EndpointSpec",
    "GenerationSpec",
    "JudgeSpec",
    "MetricSpec",
    "PromptSpec",
    "ProvenanceSpec",
    "SignatureSpec",
    "SliceSpec",
    "Spec",
    "TextClassificationSpec",
]
