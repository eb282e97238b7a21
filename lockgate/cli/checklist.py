"""``lockgate checklist SPEC.yaml``: what is done and what is left before, during and after a rollout.

The shell: it asks the MLflow registry about each variant and, with ``--store``, the rollout store
about the deployment's history; :mod:`lockgate.readiness` decides.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lockgate.cli.output import console
from lockgate.errors import NotFound
from lockgate.readiness.checklist import DeploymentFacts, VersionFacts
from lockgate.readiness.rubric import Level
from lockgate.rollout.spec import DeploymentSpec

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
_STATUS_STYLE = {"done": "[green]✓ done[/]", "left": "[red]✗ left[/]", "manual": "[yellow]☐ by hand[/]"}


def _version_facts(uri: str) -> VersionFacts:
    from lockgate.gates.gate import TAG_VERDICT
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import get_model_version

    match = _MODELS_URI.match(uri)
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
        aliases=version.aliases,
        run_id=version.run_id,
        git_commit=version.git_commit,
        has_datasets=bool(version.datasets),
    )


def gather_facts(spec: DeploymentSpec, store_url: str | None) -> DeploymentFacts:
    """Ask the registry about every variant and, when given, the store about the deployment."""
    versions = {variant: _version_facts(uri) for variant, uri in spec.variants.items()}
    if store_url is None:
        return DeploymentFacts(versions)
    from lockgate.rollout.sqlstore import SqlStore

    store = SqlStore(store_url)
    try:
        deployment = store.get_deployment(spec.name)
        events = store.events(spec.name)
    except NotFound:
        return DeploymentFacts(versions, is_store_checked=True)
    finally:
        store.close()
    return DeploymentFacts(
        versions,
        is_store_checked=True,
        has_rollback_event=any(e.to_phase == "rolled_back" for e in events),
        phase=deployment.state.phase.value,
    )


def checklist_command(
    spec_file: Annotated[Path, typer.Argument(help="The deployment spec (YAML).")],
    store: Annotated[
        str | None,
        typer.Option("--store", help="Rollout store URL, to look for a rehearsed rollback in its history."),
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
    verdict on the candidate, a strategy other than direct, an analysis policy; with --store, a
    rollback rehearsed. The rubric (Breck et al. 2017) is scored from what lockgate can see plus
    what you declare; each missing point names the lockgate feature that automates it.

    Example:  lockgate checklist canary.yaml --store sqlite:///.lockgate/rollouts.db --manual D2
    """
    from lockgate.readiness.checklist import check_deployment, rubric_evidence
    from lockgate.readiness.rubric import SECTIONS, score_rubric
    from lockgate.rollout.spec import load_spec

    spec = load_spec(spec_file)
    facts = gather_facts(spec, store)
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
