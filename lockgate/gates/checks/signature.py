"""``signature:``: the candidate's input schema must accept what the champion's accepted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lockgate.gates.kinds import CheckKind, GateInputs, Spec, register_check_kind
from lockgate.gates.result import CheckResult, check_failed, check_passed, check_skipped

__all__ = [
    "KIND",
    "SignatureSpec",
    "signature_compatibility",
]


class SignatureSpec(Spec):
    """The candidate's input schema must accept what the champion's accepted."""

    require_signature: bool = True


def _columns(schema: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(spec.get("name", index)): spec for index, spec in enumerate(schema)}


def _is_tensor(schema: Sequence[Mapping[str, Any]]) -> bool:
    return any(spec.get("type") == "tensor" for spec in schema)


def _shapes_compatible(old: Sequence[int], new: Sequence[int]) -> bool:
    if len(old) != len(new):
        return False
    return all(n == -1 or n == o for o, n in zip(old, new, strict=True))


def signature_compatibility(
    candidate: Sequence[Mapping[str, Any]] | None,
    baseline: Sequence[Mapping[str, Any]] | None,
    *,
    require_signature: bool = True,
) -> CheckResult:
    """Backwards compatibility of input schemas (MLflow ``Schema.to_dict()`` lists).

    Whatever a client sent to the baseline must still work: the candidate may drop columns and add
    optional ones, but not require a new column, make an optional one required, or change a type.
    """
    name = "signature"
    if candidate is None:
        if require_signature:
            return check_failed(name, "the candidate has no input signature; log the model with one")
        return check_skipped(name, "the candidate has no input signature")
    if baseline is None:
        return check_skipped(name, "no baseline signature to compare with", columns=len(candidate))
    if _is_tensor(candidate) or _is_tensor(baseline):
        if not (_is_tensor(candidate) and _is_tensor(baseline)) or len(candidate) != len(baseline):
            return check_failed(name, "the input changed between a tensor and a column schema")
        problems = []
        for index, (old, new) in enumerate(zip(baseline, candidate, strict=True)):
            old_spec, new_spec = old.get("tensor-spec", {}), new.get("tensor-spec", {})
            if old_spec.get("dtype") != new_spec.get("dtype"):
                problems.append(f"input {index} dtype {old_spec.get('dtype')} → {new_spec.get('dtype')}")
            if not _shapes_compatible(old_spec.get("shape", []), new_spec.get("shape", [])):
                problems.append(f"input {index} shape {old_spec.get('shape')} → {new_spec.get('shape')}")
        if problems:
            return check_failed(name, "incompatible tensor input: " + "; ".join(problems))
        return check_passed(name, "tensor inputs unchanged", inputs=len(candidate))
    new, old = _columns(candidate), _columns(baseline)
    added_required = sorted(c for c, s in new.items() if c not in old and s.get("required", True))
    now_required = sorted(
        c for c, s in new.items() if c in old and s.get("required", True) and not old[c].get("required", True)
    )
    type_changes = sorted(
        f"{c} {old[c].get('type')} → {s.get('type')}"
        for c, s in new.items()
        if c in old and s.get("type") != old[c].get("type")
    )
    removed = sorted(set(old) - set(new))
    added_optional = sorted(c for c, s in new.items() if c not in old and not s.get("required", True))
    numbers = {
        "columns_candidate": len(new),
        "columns_baseline": len(old),
        "new_required": len(added_required),
        "type_changes": len(type_changes),
        "removed": len(removed),
    }
    problems = []
    if added_required:
        problems.append(f"requires new column(s) {', '.join(added_required)}")
    if now_required:
        problems.append(f"makes optional column(s) required: {', '.join(now_required)}")
    if type_changes:
        problems.append(f"changes type(s): {', '.join(type_changes)}")
    if problems:
        return check_failed(name, "not backwards compatible: " + "; ".join(problems), **numbers)
    notes = []
    if removed:
        notes.append(f"no longer reads {', '.join(removed)}")
    if added_optional:
        notes.append(f"adds optional {', '.join(added_optional)}")
    summary = "compatible: " + "; ".join(notes) if notes else "unchanged"
    return check_passed(name, f"{summary} ({len(new)} columns)", **numbers)


def _run_signature(spec: SignatureSpec, inputs: GateInputs) -> list[CheckResult]:
    if inputs.baseline_schema is None and inputs.baseline_ref is None:
        return [check_skipped("signature", "no baseline model to compare with")]
    return [
        signature_compatibility(
            inputs.candidate_schema, inputs.baseline_schema, require_signature=spec.require_signature
        )
    ]


KIND = register_check_kind(CheckKind("signature", SignatureSpec, frozenset({"signature"}), _run_signature))
