# ruff: noqa: E501  (the tables below are prose, one row a line, as in the docs they feed)
"""The deployment checklist (before, during, after a rollout), checked where it can be offline.

Pure: :class:`DeploymentFacts` (what the registry and the rollout store say, gathered by the CLI
shell) and a spec in, one :class:`ItemResult` per item out. Items that only a person can do (watch
the rollout, give reasons) come back ``manual`` with the command that helps. The same facts give the
evidence for the ML Test Score tests they prove (:func:`rubric_evidence`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from lockgate.readiness.rubric import Level
from lockgate.rollout.spec import DeploymentSpec, DirectStrategy

__all__ = [
    "CHECKLIST",
    "ChecklistItem",
    "DeploymentFacts",
    "ItemResult",
    "Status",
    "VersionFacts",
    "check_deployment",
    "lockgate_alerts",
    "rubric_evidence",
]

Status: TypeAlias = Literal["done", "left", "manual", "unchecked"]


@dataclass(frozen=True)
class ChecklistItem:
    """One item: when (before, during, after), what, and the lockgate command that does or shows it."""

    id: str
    stage: Literal["before", "during", "after"]
    item: str
    how: str
    is_checked: bool


CHECKLIST: tuple[ChecklistItem, ...] = (
    ChecklistItem("registered", "before", "every variant is a registered model version", "`lockgate register RUN --name NAME`", True),
    ChecklistItem("checksum", "before", "every variant has its artifact checksum recorded (`lockgate.artifact_sha256`)", "`lockgate register` records it; `lockgate serve` verifies it", True),
    ChecklistItem("gate", "before", "the candidate passed the validation gate (`lockgate.gate.verdict` = pass)", "`lockgate validate NAME@V --policy lockgate.yaml`", True),
    ChecklistItem("strategy", "before", "the strategy is not `direct`: the candidate meets a slice of traffic first", "`strategy: {type: canary, ...}` in the spec", True),
    ChecklistItem("analysis", "before", "an analysis policy judges the rollout", "`analysis: {policy: sequential}` (the default) in the spec", True),
    ChecklistItem("rollback", "before", "rollback was rehearsed (a `rolled_back` event in the rollout store)", "`lockgate simulate --spec SPEC --candidate-error-rate 0.05`, or a staging rollout and `lockgate rollout rollback NAME`", True),
    ChecklistItem("cost", "before", "the rollout's cost and risk exposure were estimated", "`lockgate plan --cost SPEC --price P --traffic R --throughput T`", False),
    ChecklistItem("runbook", "before", "a runbook names the owners, thresholds and commands", "`lockgate runbook SPEC --owner owner=NAME --out RUNBOOK.md`", False),
    ChecklistItem("alerts", "before", "alerts are set on the server's metrics (error rate, p99, readiness)", "scrape `/metrics` with Prometheus and load alert rules on `lockgate_*` metrics (`--alert-rules FILE`); the runbook lists each alert and its action", True),
    ChecklistItem("watch", "during", "someone watches the rollout, with the runbook open", "`lockgate rollout status NAME --watch`", False),
    ChecklistItem("reasons", "during", "every manual promote, pause or rollback gives a reason", "`lockgate rollout promote|pause|rollback NAME --reason ...`", False),
    ChecklistItem("champion", "after", "after promotion, the `champion` alias points at the candidate", "moved by the server on promotion; `lockgate alias set NAME champion V` by hand", True),
    ChecklistItem("history", "after", "the audit log was read and the outcome recorded", "`lockgate rollout history NAME`", False),
    ChecklistItem("previous", "after", "the baseline version stays registered, so a later rollback is possible", "`lockgate models show NAME`", True),
)  # fmt: skip


@dataclass(frozen=True)
class VersionFacts:
    """What the registry says about one variant's model URI (``is_registered`` False: not found)."""

    uri: str
    is_registered: bool
    artifact_sha256: str | None = None
    gate_verdict: str | None = None
    aliases: tuple[str, ...] = ()
    run_id: str | None = None
    git_commit: str | None = None
    has_datasets: bool = False
    gate_kinds: frozenset[str] = frozenset()  # the gate's check kinds that ran on this version


@dataclass(frozen=True)
class DeploymentFacts:
    """The registry's facts per variant; the store's only when a store was given."""

    versions: Mapping[str, VersionFacts]
    is_store_checked: bool = False
    has_rollback_event: bool = False
    phase: str | None = None
    notes: Mapping[str, str] = field(default_factory=dict)
    alert_rules: tuple[str, ...] | None = None  # alerts on lockgate_* metrics found; None: none given


@dataclass(frozen=True)
class ItemResult:
    item: ChecklistItem
    status: Status
    detail: str


def check_deployment(spec: DeploymentSpec, facts: DeploymentFacts) -> tuple[ItemResult, ...]:
    """Every checklist item with its status and, when it is not done, what is missing."""
    results = []
    for item in CHECKLIST:
        if not item.is_checked:
            results.append(ItemResult(item, "manual", item.how))
            continue
        status, detail = _CHECKS[item.id](spec, facts)
        results.append(ItemResult(item, status, detail))
    return tuple(results)


def _done(ok: bool, detail: str) -> tuple[Status, str]:
    return ("done" if ok else "left"), detail


def _registered(spec: DeploymentSpec, facts: DeploymentFacts) -> tuple[Status, str]:
    missing = [f"{v} ({facts.versions[v].uri})" for v in spec.variants if not facts.versions[v].is_registered]
    return _done(not missing, "not registered: " + ", ".join(missing) if missing else "all registered")


def _checksum(spec: DeploymentSpec, facts: DeploymentFacts) -> tuple[Status, str]:
    missing = [v for v in spec.variants if not facts.versions[v].artifact_sha256]
    return _done(not missing, "no checksum: " + ", ".join(missing) if missing else "all recorded")


def _gate(spec: DeploymentSpec, facts: DeploymentFacts) -> tuple[Status, str]:
    verdict = facts.versions[spec.candidate].gate_verdict
    if verdict is None:
        return "left", f"no gate verdict on {facts.versions[spec.candidate].uri}: run `lockgate validate`"
    return _done(verdict == "pass", f"verdict '{verdict}'")


def _strategy(spec: DeploymentSpec, facts: DeploymentFacts) -> tuple[Status, str]:
    return _done(not isinstance(spec.strategy, DirectStrategy), f"strategy {spec.strategy.kind}")


def _analysis(spec: DeploymentSpec, facts: DeploymentFacts) -> tuple[Status, str]:
    if isinstance(spec.strategy, DirectStrategy):
        return "left", "a direct switch is never analysed"
    options = ", ".join(f"{k}={v}" for k, v in spec.analysis.options.items()) or "defaults"
    return "done", f"{spec.analysis.policy} ({options})"


def _rollback(spec: DeploymentSpec, facts: DeploymentFacts) -> tuple[Status, str]:
    if not facts.is_store_checked:
        return "unchecked", "give --store URL to look for a rolled_back event"
    return _done(
        facts.has_rollback_event, "rolled_back event found" if facts.has_rollback_event else "none found"
    )


def _alerts(spec: DeploymentSpec, facts: DeploymentFacts) -> tuple[Status, str]:
    if facts.alert_rules is None:
        return "unchecked", "give --alert-rules FILE (Prometheus rules) to check the alerts"
    if not facts.alert_rules:
        return "left", "the rules files hold no alert on a lockgate_* metric"
    return "done", f"{len(facts.alert_rules)} alerts: " + ", ".join(facts.alert_rules)


def lockgate_alerts(rules: object) -> tuple[str, ...]:
    """The names of the alerting rules in a Prometheus rules document whose expression reads a
    ``lockgate_*`` metric (recording rules and alerts on other metrics are not counted)."""
    groups = rules.get("groups") if isinstance(rules, Mapping) else None
    names: list[str] = []
    for group in groups if isinstance(groups, list) else []:
        entries = group.get("rules") if isinstance(group, Mapping) else None
        for rule in entries if isinstance(entries, list) else []:
            if not isinstance(rule, Mapping):
                continue
            alert, expr = rule.get("alert"), rule.get("expr")
            if isinstance(alert, str) and "lockgate_" in str(expr):
                names.append(alert)
    return tuple(names)


def _champion(spec: DeploymentSpec, facts: DeploymentFacts) -> tuple[Status, str]:
    candidate = facts.versions[spec.candidate]
    if "champion" in candidate.aliases:
        return "done", f"champion is {candidate.uri}"
    if facts.phase == "promoted":
        return "left", "promoted, but the alias champion is not on the candidate"
    return "unchecked", "not promoted yet"


def _previous(spec: DeploymentSpec, facts: DeploymentFacts) -> tuple[Status, str]:
    baseline = facts.versions[spec.baseline]
    return _done(
        baseline.is_registered, f"{baseline.uri} " + ("registered" if baseline.is_registered else "missing")
    )


_CHECKS = {
    "registered": _registered,
    "checksum": _checksum,
    "gate": _gate,
    "strategy": _strategy,
    "analysis": _analysis,
    "rollback": _rollback,
    "alerts": _alerts,
    "champion": _champion,
    "previous": _previous,
}


def rubric_evidence(spec: DeploymentSpec, facts: DeploymentFacts) -> dict[str, Level]:
    """The ML Test Score tests these facts prove are automated (or done by hand)."""
    candidate = facts.versions[spec.candidate]
    is_rolled_out = not isinstance(spec.strategy, DirectStrategy)
    evidence: dict[str, Level] = {}
    if candidate.gate_verdict is not None:
        evidence["I4"] = "automated"  # the gate ran and tagged its verdict
        if "budgets" in candidate.gate_kinds:
            evidence["D3"] = "automated"  # latency and size budgets bound what features cost
            evidence["N6"] = "automated"
        if "slices" in candidate.gate_kinds:
            evidence["M6"] = "automated"  # quality on the slices that matter
        if candidate.has_datasets:
            evidence["D1"] = "automated"  # profiled dataset versions and the gate's data checks
    if candidate.run_id and candidate.git_commit:
        evidence["M1"] = "automated"  # params, commit and packages tracked; the version registered
        if candidate.has_datasets:
            evidence["I1"] = "automated"  # `lockgate reproduce` can check commit, environment, data
    if candidate.run_id:
        evidence["I5"] = "automated"  # lineage: dataset → run → version
    if is_rolled_out:
        evidence["I6"] = "automated"
        evidence["N7"] = "automated"  # the rollout's guardrails judge live prediction quality
    if facts.has_rollback_event:
        evidence["I7"] = "automated"
    elif facts.versions[spec.baseline].is_registered:
        evidence["I7"] = "manual"  # `lockgate alias set` back to the old version, by hand
    return evidence
