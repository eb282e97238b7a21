"""``lockgate checklist DEPLOYMENT|SPEC``: what is done and what is left before, during and after a rollout.

The shell: it asks the MLflow registry about each variant and, with ``--store``, the rollout store
about the deployment's history; :mod:`lockgate.readiness` decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lockgate.cli.output import console
from lockgate.errors import NotFound

if TYPE_CHECKING:  # the readiness rubric and the rollout package load numpy: only the command needs them
    from lockgate.readiness.checklist import DeploymentFacts, VersionFacts
    from lockgate.readiness.rubric import Level
    from lockgate.rollout.spec import DeploymentSpec

_STATUS_STYLE = {"done": "[green]✓ done[/]", "left": "[red]✗ left[/]", "manual": "[yellow]☐ by hand[/]"}


def _version_facts(uri: str) -> VersionFacts:
    from lockgate.gates.gate import TAG_KINDS, TAG_REPORT, TAG_VERDICT
    from lockgate.readiness.checklist import VersionFacts
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import MODELS_URI, get_model_version

    match = MODELS_URI.match(uri)
    if match is None:
        return VersionFacts(uri, is_registered=False)
    ref = f"{match['name']}@{match['alias'] or match['version']}"
    try:
        version = get_model_version(connect(), ref)
    except NotFound:
        return VersionFacts(uri, is_registered=False)
    return VersionFacts(
        uri,
        is_registered=True,
        artifact_sha256=version.artifact_sha256,
        gate_verdict=version.tags.get(TAG_VERDICT),
        gate_kinds=_gate_kinds(version.tags.get(TAG_KINDS), version.run_id, version.tags.get(TAG_REPORT)),
        aliases=version.aliases,
        run_id=version.run_id,
        git_commit=version.git_commit,
        has_datasets=bool(version.datasets),
    )


def _gate_kinds(tagged: str | None, run_id: str | None, report: str | None) -> frozenset[str]:
    """The check kinds the gate ran: from the version's tag, or (a version gated before the tag
    existed) from the report the gate logged to its run."""
    if tagged is not None:
        return frozenset(kind for kind in tagged.split(",") if kind)
    if run_id is None or report is None:
        return frozenset()
    import json

    from mlflow.exceptions import MlflowException

    from lockgate.tracking.connection import connect

    try:
        local = connect().client.download_artifacts(run_id, report)
        with open(local, encoding="utf-8") as file:
            results = json.load(file).get("checks", [])
    except (OSError, ValueError, MlflowException):
        return frozenset()
    return frozenset(r["kind"] for r in results if r.get("kind") and r.get("status") != "skipped")


def read_alert_rules(paths: list[Path]) -> tuple[str, ...]:
    """The alerts on lockgate metrics in these Prometheus rules files (a bad file is a user error)."""
    import yaml

    from lockgate.errors import UserError
    from lockgate.readiness.checklist import lockgate_alerts

    names: list[str] = []
    for path in paths:
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            message = f"cannot read the alert rules {path}: {exc.strerror}"
            raise UserError(message, hint="check the path") from exc
        except yaml.YAMLError as exc:
            raise UserError(
                f"{path} is not YAML: {exc}", hint="give a Prometheus rules file (groups: [{rules: ...}])"
            ) from exc
        if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
            raise UserError(
                f"{path} is not a Prometheus rules file: it has no 'groups' list",
                hint="see deploy/monitoring/ for lockgate's alert rules",
            )
        names.extend(lockgate_alerts(document))
    return tuple(names)


def gather_facts(
    spec: DeploymentSpec, store_url: str | None, alert_rules: tuple[str, ...] | None = None
) -> DeploymentFacts:
    """Ask the registry about every variant and, when given, the store about the deployment."""
    from lockgate.readiness.checklist import DeploymentFacts

    versions = {variant: _version_facts(uri) for variant, uri in spec.variants.items()}
    if store_url is None:
        return DeploymentFacts(versions, alert_rules=alert_rules)
    from lockgate.rollout.sqlstore import SqlStore

    store = SqlStore(store_url)
    try:
        deployment = store.get_deployment(spec.name)
        events = store.events(spec.name)
    except NotFound:
        return DeploymentFacts(versions, is_store_checked=True, alert_rules=alert_rules)
    finally:
        store.close()
    return DeploymentFacts(
        versions,
        is_store_checked=True,
        has_rollback_event=any(e.to_phase == "rolled_back" for e in events),
        phase=deployment.state.phase.value,
        alert_rules=alert_rules,
    )


def checklist_command(
    target: Annotated[
        str,
        typer.Argument(
            metavar="DEPLOYMENT|SPEC",
            help="A deployment's name (its live spec and history are read from the store) or a spec file.",
        ),
    ],
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Rollout store URL, to look for a rehearsed rollback in its history (default: the "
            "sqlite store under LOCKGATE_HOME, when it exists).",
        ),
    ] = None,
    alert_rules: Annotated[
        list[Path] | None,
        typer.Option("--alert-rules", help="A Prometheus rules file the alerts come from (repeatable)."),
    ] = None,
    automated: Annotated[
        list[str] | None,
        typer.Option(
            "--automated", help="An ML Test Score test your project automates, e.g. D2 (repeatable)."
        ),
    ] = None,
    manual: Annotated[
        list[str] | None,
        typer.Option("--manual", help="An ML Test Score test your project runs by hand (repeatable)."),
    ] = None,
) -> None:
    """Check the deployment checklist offline, print what is left, and score the ML Test Score.

    Checked from the spec and the MLflow registry: every variant registered with its checksum, a gate
    verdict on the candidate, a strategy other than direct, an analysis policy; from the store (a
    DEPLOYMENT, or --store), a rollback rehearsed; with --alert-rules, alerts on lockgate's metrics.
    The rubric (Breck et al. 2017) is scored from what lockgate can see plus
    what you declare; each missing point names the lockgate feature that automates it.

    Examples:

        lockgate checklist canary.yaml --store sqlite:///.lockgate/rollouts.db --manual D2

        lockgate checklist churn --alert-rules deploy/monitoring/alert-rules.yml
    """
    from lockgate.cli.target import default_store, resolve_spec, sqlite_file
    from lockgate.readiness.checklist import check_deployment, rubric_evidence
    from lockgate.readiness.rubric import SECTIONS, score_rubric

    spec, live_store = resolve_spec(target, store)
    if live_store is None and store is None:
        # a spec file: its deployment's history is in the default store when there is one
        default = default_store()
        found = sqlite_file(default)
        live_store = default if found is not None and found.exists() else None
    rules = read_alert_rules(alert_rules) if alert_rules else None
    facts = gather_facts(spec, live_store or store, rules)
    results = check_deployment(spec, facts)
    table = Table(title=f"{spec.name}: deployment checklist")
    for column in ("when", "item", "status", "detail"):
        table.add_column(column)
    for result in results:
        status = _STATUS_STYLE.get(result.status, "[dim]? unchecked[/]")
        table.add_row(result.item.stage, escape(result.item.item), status, escape(result.detail))
    console.print(table)
    left = [r for r in results if r.status != "done"]
    console.print(f"[bold]{len(results) - len(left)} of {len(results)} done[/]; left:")
    for result in left:
        console.print(f"  - {escape(result.item.item)}: {escape(result.item.how)}")

    levels: dict[str, Level] = dict(rubric_evidence(spec, facts))
    for test_id in manual or ():
        levels.setdefault(test_id.upper(), "manual")
    for test_id in automated or ():
        levels[test_id.upper()] = "automated"
    score = score_rubric(levels)
    rubric = Table(
        title="ML Test Score (Breck et al. 2017): 0.5 by hand, 1 automated; final = lowest section"
    )
    for column in ("section", "score", "of"):
        rubric.add_column(column, justify="left" if column == "section" else "right")
    for section in SECTIONS:
        rubric.add_row(section, f"{score.section_scores[section]:g}", "7")
    rubric.add_row("[bold]final[/]", f"[bold]{score.final:g}[/]", f"7 (weakest: {score.weakest})")
    console.print(rubric)
    missing = Table(title="points left, and what turns each into an automated test")
    for column in ("test", "now", "+pts", "lockgate feature"):
        missing.add_column(column)
    for test, points in score.missing_points():
        missing.add_row(
            f"{test.id} {escape(test.test)}", score.levels[test.id], f"{points:g}", escape(test.how)
        )
    console.print(missing)
