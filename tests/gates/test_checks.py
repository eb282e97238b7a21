from __future__ import annotations

import json
import math

import pytest

from lockgate.gates import checks
from lockgate.gates.comparison import mcnemar_exact
from lockgate.gates.drift import prediction_drift


def test_metric_threshold_follows_mlflow_rules() -> None:
    ok = checks.metric_threshold(
        "accuracy",
        0.95,
        0.93,
        greater_is_better=True,
        threshold=0.9,
        min_absolute_change=0.01,
        min_relative_change=0.01,
    )
    assert ok.passed and ok.numbers["change"] == pytest.approx(0.02)
    low = checks.metric_threshold("accuracy", 0.85, None, greater_is_better=True, threshold=0.9)
    assert not low.passed and "below the threshold 0.9" in low.message
    small = checks.metric_threshold("accuracy", 0.935, 0.93, greater_is_better=True, min_absolute_change=0.01)
    assert not small.passed and "less than 0.01" in small.message
    loss = checks.metric_threshold("log_loss", 0.30, 0.40, greater_is_better=False, min_relative_change=0.2)
    assert loss.passed and loss.numbers["relative_change"] == pytest.approx(0.25)
    above = checks.metric_threshold("log_loss", 0.5, None, greater_is_better=False, threshold=0.4)
    assert not above.passed and "above the threshold" in above.message


def test_change_rules_without_a_baseline_are_reported_not_applied() -> None:
    result = checks.metric_threshold("f1", 0.9, None, greater_is_better=True, min_absolute_change=0.05)
    assert result.passed and "not applied" in result.message


def test_undefined_metric_fails() -> None:
    assert not checks.metric_threshold(
        "roc_auc", math.nan, None, greater_is_better=True, threshold=0.5
    ).passed


def test_champion_mcnemar_margin() -> None:
    base = [True] * 100
    cand = [False] * 3 + [True] * 97
    result = mcnemar_exact(cand, base)
    assert not checks.champion_mcnemar(result, margin=0.0).passed
    assert checks.champion_mcnemar(result, margin=0.2).passed
    assert checks.champion_mcnemar(result, margin=0.0).numbers["baseline_only"] == 3


def test_a_failed_mcnemar_check_names_its_lower_bound_as_the_reason() -> None:
    """Issue 20: "worse by more than 0.02: accuracy difference -0.0117" read as a contradiction."""
    # 8 rows only the champion got right, 4 only the candidate, 288 both
    base = [True] * 8 + [False] * 4 + [True] * 288
    cand = [False] * 8 + [True] * 4 + [True] * 288
    result = mcnemar_exact(cand, base)
    failed = checks.champion_mcnemar(result, margin=0.02)
    assert not failed.passed and -0.02 < result.difference < 0 and result.ci_low < -0.02
    assert f"lower bound of the accuracy difference, {result.ci_low:+.4f}, is below -0.0200" in failed.message
    assert "worse than the champion by more than" not in failed.message


def test_slice_rules() -> None:
    kwargs = {"greater_is_better": True, "margin": 0.05, "min_rows": 10}
    assert checks.slice_against_baseline("big", "accuracy", 50, 0.90, 0.93, **kwargs).passed
    worse = checks.slice_against_baseline("big", "accuracy", 50, 0.80, 0.93, **kwargs)
    assert not worse.passed and "more than the margin" in worse.message
    assert checks.slice_against_baseline("tiny", "accuracy", 5, 0.0, 1.0, **kwargs).is_skipped
    below = checks.slice_against_baseline("big", "accuracy", 50, 0.8, None, threshold=0.85, **kwargs)
    assert not below.passed


def _cols(*specs: tuple[str, str, bool]) -> list[dict[str, object]]:
    return [{"name": n, "type": t, "required": r} for n, t, r in specs]


def test_signature_compatibility() -> None:
    champ = _cols(("a", "double", True), ("b", "double", True), ("c", "string", False))
    assert checks.signature_compatibility(champ, champ).passed
    fewer = checks.signature_compatibility(_cols(("a", "double", True)), champ)
    assert fewer.passed and "no longer reads b, c" in fewer.message
    optional = checks.signature_compatibility([*champ, *_cols(("d", "long", False))], champ)
    assert optional.passed
    new_required = checks.signature_compatibility([*champ, *_cols(("d", "long", True))], champ)
    assert not new_required.passed and "requires new column(s) d" in new_required.message
    retyped = checks.signature_compatibility(_cols(("a", "long", True), ("b", "double", True)), champ)
    assert not retyped.passed and "a double → long" in retyped.message
    stricter = checks.signature_compatibility(_cols(("a", "double", True), ("c", "string", True)), champ)
    assert not stricter.passed and "optional column(s) required: c" in stricter.message
    assert not checks.signature_compatibility(None, champ).passed
    assert checks.signature_compatibility(None, champ, require_signature=False).is_skipped
    assert checks.signature_compatibility(champ, None).is_skipped


def test_tensor_signatures() -> None:
    def tensor(dtype: str, shape: list[int]) -> list[dict[str, object]]:
        return [{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}]

    assert checks.signature_compatibility(tensor("float64", [-1, 30]), tensor("float64", [-1, 30])).passed
    assert not checks.signature_compatibility(tensor("float32", [-1, 30]), tensor("float64", [-1, 30])).passed
    assert not checks.signature_compatibility(tensor("float64", [-1, 2]), tensor("float64", [-1, 30])).passed
    assert not checks.signature_compatibility(
        tensor("float64", [-1, 30]), _cols(("a", "double", True))
    ).passed


def test_budgets() -> None:
    fast = [[1.0] * 19 + [2.0]] * 3
    result = checks.latency_budget(fast, 5.0)
    assert result.passed and result.numbers["repeats"] == 3
    slow = [[10.0] * 20, [1.0] * 20, [10.0] * 20]
    assert not checks.latency_budget(slow, 5.0).passed  # median of per-repeat p95s is 10
    assert checks.latency_budget([[10.0] * 20, [1.0] * 20, [1.0] * 20], 5.0).passed
    assert not checks.size_budget(2_000, 1_000).passed
    assert checks.size_budget(1_000, 1_000).passed


def _profile(rows: int, **columns: dict[str, object]) -> dict[str, object]:
    return {"rows": rows, "columns": columns}


REFERENCE = _profile(
    100,
    x={"dtype": "float64", "nulls": 0, "mean": 0.0, "std": 1.0, "min": -3.0, "max": 3.0},
    k={"dtype": "int64", "nulls": 0, "mean": 5.0, "std": 2.0, "min": 0.0, "max": 10.0},
    s={"dtype": "object", "nulls": 0, "unique": 3},
)


def test_data_checks_pass_on_the_reference_itself() -> None:
    assert checks.data_schema(REFERENCE, REFERENCE).passed
    assert checks.data_nulls(REFERENCE, REFERENCE, max_increase=0.0).passed
    assert checks.data_ranges(REFERENCE, REFERENCE, tolerance=0.0).passed
    skew = checks.data_skew(REFERENCE, REFERENCE, max_mean_shift_std=0.1, max_std_ratio=1.1)
    assert skew.passed and skew.numbers["worst_mean_shift_std"] == 0.0


def test_data_checks_catch_problems() -> None:
    holdout = _profile(
        50,
        x={"dtype": "float64", "nulls": 10, "mean": 1.0, "std": 3.0, "min": -3.0, "max": 9.0},
        k={"dtype": "float64", "nulls": 0, "mean": 5.0, "std": 2.0, "min": 0.0, "max": 10.0},
        s={"dtype": "float64", "nulls": 0, "mean": 1.0, "std": 1.0, "min": 0.0, "max": 1.0},
    )
    schema = checks.data_schema(holdout, REFERENCE)
    assert not schema.passed and "s object → float64" in schema.message and "k" not in schema.message
    nulls = checks.data_nulls(holdout, REFERENCE, max_increase=0.1)
    assert not nulls.passed and nulls.numbers["worst_column"] == "x"
    ranges = checks.data_ranges(holdout, REFERENCE, tolerance=0.1)
    assert not ranges.passed and "x [-3, 9]" in ranges.message
    skew = checks.data_skew(holdout, REFERENCE, max_mean_shift_std=0.5, max_std_ratio=2.0)
    assert not skew.passed and "x mean moved 1.00 sd" in skew.message and "x spread ×3.00" in skew.message
    missing = checks.data_schema(_profile(1, x=REFERENCE["columns"]["x"]), REFERENCE)  # type: ignore[index]
    assert not missing.passed and "missing column(s) k, s" in missing.message


def test_prediction_drift_check() -> None:
    same = prediction_drift([0.1, 0.5, 0.9] * 20, [0.1, 0.5, 0.9] * 20)
    assert checks.prediction_drift(same, max_psi=0.2, max_ks=0.2, on="score").passed
    moved = prediction_drift([0.1, 0.5, 0.9] * 20, [0.9] * 60)
    result = checks.prediction_drift(moved, max_psi=0.2, max_ks=0.2, on="score")
    assert not result.passed and result.numbers["psi"] > 0.2


def test_provenance() -> None:
    good = {
        "lockgate.git.commit": "abc123def4567",
        "lockgate.git.dirty": "false",
        "lockgate.datasets": json.dumps([{"name": "d", "version": 1, "digest": "ff", "verified": "read"}]),
    }
    assert checks.provenance(good).passed
    dirty = checks.provenance({**good, "lockgate.git.dirty": "true"})
    assert not dirty.passed and "uncommitted changes" in dirty.message
    assert checks.provenance({**good, "lockgate.git.dirty": "true"}, require_clean=False).passed
    bare = checks.provenance({})
    assert not bare.passed and "no git commit" in bare.message and "no dataset digests" in bare.message


def test_provenance_takes_only_links_from_the_bytes_the_run_used() -> None:
    tags = {"lockgate.git.commit": "abc123def4567", "lockgate.git.dirty": "false"}
    on_trust = {**tags, "lockgate.datasets": json.dumps([{"name": "d", "version": 1, "digest": "ff"}])}
    result = checks.provenance(on_trust)
    assert not result.passed and "dataset link unverified: d@1" in result.message
    assert result.numbers["unverified"] == 1
    relaxed = checks.provenance(on_trust, require_verified=False)
    assert relaxed.passed and "1 unverified" in relaxed.message
    edited = [{"name": "d", "version": None, "changed_from": 1, "digest": "ee", "verified": "hashed"}]
    result = checks.provenance({**tags, "lockgate.datasets": json.dumps(edited)})
    assert not result.passed and "not the version they name: d (changed from @1)" in result.message
    checked = [{"name": "d", "version": 1, "digest": "ff", "verified": "hashed"}]
    result = checks.provenance({**tags, "lockgate.datasets": json.dumps(checked)})
    assert result.passed and result.message.endswith("1 dataset digest(s)")
    assert "unverified" not in result.numbers
