# ruff: noqa: E501  (the tables below are prose, one row a line, as in the docs they feed)
"""The ML Test Score rubric (Breck, Cai, Nielsen, Salib and Sculley, IEEE Big Data 2017) as data.

28 tests in four sections of seven. A test run by hand scores 0.5, an automated one 1; a section's
score is the sum of its tests and the final score is the lowest section's, so a project is only as
ready as its weakest area. :data:`RUBRIC` is the one table: ``lockgate checklist`` scores from it and
``docs/mlops-checklist.md`` shows it (a test keeps the page and the table equal). ``how`` says which
lockgate command or gate check automates the test; ``(yours)`` marks what no tool can check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from lockgate.errors import UserError

__all__ = ["RUBRIC", "SECTIONS", "Level", "RubricScore", "RubricTest", "score_rubric"]

Level: TypeAlias = Literal["automated", "manual", "missing"]
SECTIONS = ("data", "model", "infrastructure", "monitoring")
_POINTS: Mapping[str, float] = {"automated": 1.0, "manual": 0.5, "missing": 0.0}


@dataclass(frozen=True)
class RubricTest:
    """One test of the rubric: its id (D1..N7), section, what it asks, and how lockgate checks it."""

    id: str
    section: str
    test: str
    how: str

    @property
    def is_yours(self) -> bool:
        """True when no tool can check it (lockgate only helps): it stays with the team."""
        return self.how.startswith("(yours)")


RUBRIC: tuple[RubricTest, ...] = (
    RubricTest(
        "D1",
        "data",
        "Feature expectations are captured in a schema",
        "`lockgate data snapshot` records each table's profile (columns, types, nulls, mean, std, min, max); gate checks `data schema`, `data nulls`, `data ranges` hold the holdout to it",
    ),
    RubricTest(
        "D2",
        "data",
        "All features are beneficial",
        "(yours) ablations; `lockgate runs compare` puts the runs side by side",
    ),
    RubricTest(
        "D3",
        "data",
        "No feature's cost is too much",
        "gate `budgets`: `latency p95` and `artifact size` bound what extra features cost at serving time",
    ),
    RubricTest(
        "D4",
        "data",
        "Features adhere to meta-level requirements",
        "(yours); `lockgate lineage` shows which dataset version each model read",
    ),
    RubricTest("D5", "data", "The data pipeline has appropriate privacy controls", "(yours)"),
    RubricTest(
        "D6",
        "data",
        "New features can be added quickly",
        "gate `signature`: a new *optional* input column passes, a new required one fails with its name",
    ),
    RubricTest(
        "D7",
        "data",
        "All input feature code is tested",
        "(yours) unit tests; `lockgate.track` records the commit, so a model points at tested code",
    ),
    RubricTest(
        "M1",
        "model",
        "Model specs are reviewed and submitted",
        "`lockgate.track` records params, commit, diff digest, packages; gate `provenance` requires a commit, a clean tree and dataset digests; `lockgate register` versions the model",
    ),
    RubricTest(
        "M2",
        "model",
        "Offline and online metrics correlate",
        "`lockgate rollout ...` canaries compare live outcomes with the offline gate **(coming)**",
    ),
    RubricTest(
        "M3",
        "model",
        "All hyperparameters have been tuned",
        "`lockgate runs compare` / `lockgate runs diff` over tracked runs",
    ),
    RubricTest(
        "M4",
        "model",
        "The impact of model staleness is known",
        "`lockgate validate OLD_VERSION` on a newer holdout dataset version; `lockgate monitor drift`",
    ),
    RubricTest(
        "M5",
        "model",
        "A simpler model is not better",
        "gate `champion` against a simple baseline: `lockgate validate NAME@V --against NAME@BASELINE`",
    ),
    RubricTest(
        "M6",
        "model",
        "Model quality is sufficient on important data slices",
        "gate `slices` (query rules or per-value slices, no slice worse than the champion by more than the margin)",
    ),
    RubricTest(
        "M7",
        "model",
        "The model is tested for considerations of inclusion",
        "gate `slices` on the groups concerned (`column: group`); a fairness check kind can be plugged in with `register_check_kind`",
    ),
    RubricTest(
        "I1",
        "infrastructure",
        "Training is reproducible",
        "`lockgate reproduce RUN` checks the commit, Python, packages and data digests and prints the commands; the gate's bootstrap is seeded (`seed:`), so the same seed gives the same verdict",
    ),
    RubricTest(
        "I2", "infrastructure", "Model specs are unit tested", "(yours) unit tests in CI beside the gate"
    ),
    RubricTest(
        "I3",
        "infrastructure",
        "The ML pipeline is integration tested",
        "`lockgate pipeline run examples/breast_cancer/pipeline.yaml` (data → train → register → validate, unchanged stages skipped) in `.github/workflows/ml.yml` / `.gitlab-ci.yml` on every change; `tests/pipeline/test_example.py` runs it end to end",
    ),
    RubricTest(
        "I4",
        "infrastructure",
        "Model quality is validated before serving",
        "`lockgate validate` (exit 1 stops the pipeline): `metrics`, `champion` (McNemar, paired bootstrap), `slices`, `drift`, and for text models `text_classification` / `embedding_retrieval`; prompts of LLM apps with `lockgate validate prompts:/NAME/VERSION` (`prompt:`); the verdict is tagged on the version (`lockgate.gate.verdict`)",
    ),
    RubricTest(
        "I5",
        "infrastructure",
        "The model is debuggable",
        "`lockgate lineage NAME@V` (dataset → run → version → derived versions); the gate's JSON report under `gates/` in the run",
    ),
    RubricTest(
        "I6",
        "infrastructure",
        "Models are canaried before serving",
        "`lockgate deploy SPEC --start` and `lockgate rollout ...` (blue-green, canary, rolling, shadow, A/B judged by anytime-valid statistics); `lockgate checklist SPEC` checks the strategy is not `direct`",
    ),
    RubricTest(
        "I7",
        "infrastructure",
        "Serving models can be rolled back",
        "`lockgate alias set NAME champion OLD_VERSION`; `lockgate rollout rollback NAME` (automatic on a rollback verdict); `lockgate checklist SPEC --store URL` finds a rehearsed rollback in the audit log",
    ),
    RubricTest(
        "N1",
        "monitoring",
        "Dependency changes result in notification",
        "`lockgate.track` records a packages digest; `lockgate reproduce` and `lockgate runs diff` show a changed environment",
    ),
    RubricTest(
        "N2",
        "monitoring",
        "Data invariants hold in training and serving inputs",
        "gate `data` checks on the holdout; `lockgate serve` validates every request against the model signature (422 naming the field); `lockgate monitor drift`",
    ),
    RubricTest(
        "N3",
        "monitoring",
        "Training and serving features compute the same values",
        "gate `data skew` (mean shift and spread ratio against the training profile); `lockgate monitor drift` on live inputs",
    ),
    RubricTest(
        "N4",
        "monitoring",
        "Models are not too stale",
        "registry creation times (`lockgate models show`); `lockgate monitor drift`",
    ),
    RubricTest(
        "N5",
        "monitoring",
        "The model is numerically stable",
        "gate `metrics` fail on an undefined value (NaN); gate `drift` (PSI, KS) against the champion",
    ),
    RubricTest(
        "N6",
        "monitoring",
        "Computing performance has not regressed",
        "gate `budgets` (`latency p95`, `artifact size`); `lockgate serve` exports latency histograms on `/metrics`",
    ),
    RubricTest(
        "N7",
        "monitoring",
        "Prediction quality has not regressed",
        "gate `champion` and `slices` before release; the rollout's guardrails (error rate, p99 latency, sample-ratio mismatch) during it",
    ),
)


@dataclass(frozen=True)
class RubricScore:
    """Each test's level, each section's sum, and the final score (the lowest section sum)."""

    levels: Mapping[str, Level]
    section_scores: Mapping[str, float]

    @property
    def final(self) -> float:
        return min(self.section_scores.values())

    @property
    def weakest(self) -> str:
        return min(SECTIONS, key=lambda s: self.section_scores[s])

    def missing_points(self) -> tuple[tuple[RubricTest, float], ...]:
        """The tests below a full point, with the points an automated test would add."""
        return tuple(
            (t, 1.0 - _POINTS[self.levels[t.id]]) for t in RUBRIC if self.levels[t.id] != "automated"
        )


def score_rubric(levels: Mapping[str, Level]) -> RubricScore:
    """Score the rubric; tests not in ``levels`` count as missing. Unknown ids are a user error."""
    known = {t.id for t in RUBRIC}
    unknown = sorted(set(levels) - known)
    if unknown:
        raise UserError(
            f"unknown ML Test Score test {', '.join(unknown)}",
            hint="tests are D1-D7 (data), M1-M7 (model), I1-I7 (infrastructure), N1-N7 (monitoring)",
        )
    full: dict[str, Level] = {t.id: levels.get(t.id, "missing") for t in RUBRIC}
    sections = {s: sum(_POINTS[full[t.id]] for t in RUBRIC if t.section == s) for s in SECTIONS}
    return RubricScore(full, sections)
