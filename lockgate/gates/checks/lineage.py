"""``provenance:``: what the candidate's training run recorded: its commit, a clean tree, verified
dataset digests.

(The module is not named after the kind so that ``lockgate.gates.checks.provenance`` stays the function.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from lockgate.gates.kinds import CheckKind, GateInputs, Spec, register_check_kind
from lockgate.gates.result import CheckResult, Number, check_failed, check_passed
from lockgate.tracking.refs import dataset_label

__all__ = [
    "KIND",
    "ProvenanceSpec",
    "provenance",
]


class ProvenanceSpec(Spec):
    """What the candidate's training run must have recorded."""

    require_commit: bool = True
    require_clean: bool = True
    require_datasets: bool = True
    require_verified: bool = True


def provenance(
    tags: Mapping[str, str],
    *,
    require_commit: bool = True,
    require_clean: bool = True,
    require_datasets: bool = True,
    require_verified: bool = True,
) -> CheckResult:
    """The training run recorded a git commit, a clean tree and its datasets' digests; with
    ``require_verified``, each digest taken from the bytes the run used (``lockgate.data`` or
    ``track(datasets=...)``, not a link recorded on trust) and matching the version it names."""
    name = "provenance"
    commit = tags.get("lockgate.git.commit", "none")
    is_dirty = tags.get("lockgate.git.dirty", "unknown")
    try:
        datasets = json.loads(tags.get("lockgate.datasets", "[]"))
    except json.JSONDecodeError:
        datasets = []
    with_digest = [d for d in datasets if isinstance(d, dict) and d.get("digest")]
    unverified = [dataset_label(d) for d in with_digest if not d.get("verified")]
    changed = [dataset_label(d) for d in with_digest if d.get("changed_from") is not None]
    numbers: dict[str, Number] = {"commit": commit[:12], "dirty": is_dirty, "datasets": len(with_digest)}
    if unverified:
        numbers["unverified"] = len(unverified)
    problems = []
    if require_commit and commit in ("", "none"):
        problems.append("no git commit recorded (train inside a git repository with lockgate.track)")
    if require_clean and is_dirty != "false":
        problems.append(
            "trained from a tree with uncommitted changes"
            if is_dirty == "true"
            else "the tree state is unknown"
        )
    if require_datasets and not with_digest:
        problems.append("no dataset digests recorded (pass datasets=[...] to lockgate.track)")
    if require_verified and unverified:
        problems.append(
            f"dataset link unverified: {', '.join(unverified)} (recorded without hashing the files the run "
            "used; retrain reading them with lockgate.data.load or lockgate.track(datasets=[...]), or "
            "set require_verified: false)"
        )
    if require_verified and changed:
        problems.append(
            f"trained on files that are not the version they name: {', '.join(changed)} (snapshot them "
            "with `lockgate data snapshot` and train on that version)"
        )
    if problems:
        return check_failed(name, "; ".join(problems), **numbers)
    digests = f"{len(with_digest)} dataset digest(s)"
    if unverified:
        digests += f", {len(unverified)} unverified"
    return check_passed(name, f"commit {commit[:12]}, clean tree, {digests}", **numbers)


def _run_provenance(spec: ProvenanceSpec, inputs: GateInputs) -> list[CheckResult]:
    return [
        provenance(
            inputs.run_tags,
            require_commit=spec.require_commit,
            require_clean=spec.require_clean,
            require_datasets=spec.require_datasets,
            require_verified=spec.require_verified,
        )
    ]


KIND = register_check_kind(CheckKind("provenance", ProvenanceSpec, frozenset({"run_tags"}), _run_provenance))
