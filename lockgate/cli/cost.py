"""``lockgate plan --cost DEPLOYMENT|SPEC``: what a rollout of this deployment costs under each strategy."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lockgate.cli.output import console, fmt_duration, parse_rate, record_written
from lockgate.cli.target import StoreOption
from lockgate.errors import LockgateError, UserError

_UNITS_S = {"s": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _parse_seconds(text: str, option: str) -> float:
    """'90s', '15min', '12h', '30d' or a bare number of seconds -> seconds."""
    stripped = text.strip()
    number = stripped.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = stripped[len(number) :] or "s"
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _UNITS_S or value < 0 or not math.isfinite(value):
        raise UserError(f"{option} '{text}' is not a duration", hint=f"e.g. {option} 30d, 12h, 15min or 90s")
    return value * _UNITS_S[unit]


def _candidate_speedup(uri: str) -> float | None:
    """The speedup ``lockgate optimize`` measured for the registered version ``uri`` names, if any."""
    from lockgate.cli.target import sqlite_file
    from lockgate.rollout.cost import measured_speedup
    from lockgate.settings import current_settings
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import MODELS_URI, get_model_version

    match = MODELS_URI.match(uri)
    registry = current_settings().registry_uri
    database = sqlite_file(registry)
    if match is None or (database is not None and not database.exists()):
        return None  # not a registered version, or no registry yet: nothing was measured
    conn = connect()
    version = get_model_version(conn, f"{match['name']}@{match['alias'] or match['version']}")
    if not version.run_id:
        return None
    return measured_speedup(conn.client.get_run(version.run_id).data.metrics)


def plan_command(
    cost: Annotated[
        str,
        typer.Option(
            "--cost",
            metavar="DEPLOYMENT|SPEC",
            help="The deployment (its live spec, from --store) or spec file (YAML) whose rollout is costed.",
        ),
    ],
    price: Annotated[float, typer.Option(help="Price of one replica (instance), $ per hour.")],
    traffic: Annotated[str, typer.Option(help="Request rate, e.g. 200/s, 12000/min or 1e6/h.")],
    throughput: Annotated[float, typer.Option(help="Requests per second one baseline replica serves.")],
    replicas: Annotated[
        int | None, typer.Option(help="Baseline replicas (default: just enough for --traffic).")
    ] = None,
    candidate_throughput: Annotated[
        float | None,
        typer.Option(
            help="Requests/s one candidate replica serves (default: --throughput times the speedup "
            "`lockgate optimize` measured for the candidate, when it is an optimized version)."
        ),
    ] = None,
    duration: Annotated[
        str, typer.Option(help="Period for the steady-state cost after promotion, e.g. 30d.")
    ] = "30d",
    replica_start: Annotated[
        str, typer.Option(help="Time for a replica to start and load its model (rollbacks that need one).")
    ] = "60s",
    baseline_rate: Annotated[
        float, typer.Option(help="A/B: the metric's baseline rate (as `lockgate plan-test --baseline`).")
    ] = 0.10,
    mde: Annotated[float, typer.Option(help="A/B: smallest absolute change worth detecting.")] = 0.01,
    power: Annotated[float, typer.Option(help="A/B: chance of detecting a true effect of size MDE.")] = 0.8,
    store: StoreOption = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw cost, duration and risk to this .svg or .png.")
    ] = None,
) -> None:
    """Estimate what a rollout costs under each strategy, the spec's own marked.

    For blue-green, canary, rolling, shadow, A/B and direct: how long it takes, the replica-hours on
    top of the baseline's fleet and their price, how long a rollback takes, and the risk exposure
    (requests the unproven version answers before it is promoted). The model is in docs/cost.md.

    Example:

        lockgate plan --cost canary.yaml --price 2.5 --traffic 200/s --throughput 50 --candidate-throughput 99
    """
    from lockgate.cli.target import resolve_spec
    from lockgate.rollout.cost import CostInputs, estimate_cost
    from lockgate.rollout.policy import SequentialRolloutPolicy, policy_for

    spec, _ = resolve_spec(cost, store)
    rate = parse_rate(traffic)
    assert rate is not None  # --traffic is required
    note = None
    if candidate_throughput is None:
        try:
            speedup = _candidate_speedup(spec.variants[spec.candidate])
        except LockgateError as exc:  # no registry, or the version is not there: say so, cost as equal
            speedup, note = None, f"no measured speedup for the candidate ({exc.message})"
        if speedup is not None:
            candidate_throughput = throughput * speedup
            note = (
                f"candidate throughput {candidate_throughput:g} req/s: --throughput times the "
                f"{speedup:.2f}x `lockgate optimize` measured for {spec.variants[spec.candidate]}"
            )
    policy = policy_for(spec)
    alpha = policy.alpha if isinstance(policy, SequentialRolloutPolicy) else 0.05
    inputs = CostInputs(
        price_per_replica_hour=price,
        traffic_rps=rate,
        replica_throughput_rps=throughput,
        replicas=replicas,
        candidate_throughput_rps=candidate_throughput,
        horizon_s=_parse_seconds(duration, "--duration"),
        replica_start_s=_parse_seconds(replica_start, "--replica-start"),
        ab_baseline_rate=baseline_rate,
        ab_mde=mde,
        ab_alpha=alpha,
        ab_power=power,
    )
    estimate = estimate_cost(spec, inputs)
    table = Table(
        title=(
            f"{spec.name}: rollout cost at {rate:g} req/s, ${price:g}/replica-hour, "
            f"{estimate.baseline_replicas} baseline replicas"
        )
    )
    for column in ("strategy", "duration", "extra replica-h", "cost $", "rollback", "risk exposure"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    table.add_column("notes")
    for row in estimate.strategies:
        name = f"[bold]{row.strategy} ← spec[/]" if row.is_spec_strategy else row.strategy
        risk = "all, unjudged" if math.isinf(row.risk_requests) else f"{row.risk_requests:,.0f} req"
        rollback = "next request" if row.rollback_time_s == 0 else fmt_duration(row.rollback_time_s)
        table.add_row(
            name,
            fmt_duration(row.duration_s),
            f"{row.extra_replica_hours:.2f}",
            f"{row.cost:.2f}",
            rollback,
            risk,
            "; ".join(row.notes),
        )
    console.print(table)
    if note:
        console.print(note)
    delta = estimate.candidate_replicas - estimate.baseline_replicas
    console.print(
        f"after promotion: the candidate needs {estimate.candidate_replicas} replicas at "
        f"{inputs.candidate_rps_per_replica:g} req/s each (baseline {estimate.baseline_replicas}): "
        f"{delta:+d} replicas, {estimate.steady_state_delta_cost:+,.2f} $ per {duration}"
    )
    if plot is not None:
        from lockgate.figures.cost import plot_cost

        console.print(f"plot written to {record_written(plot_cost(estimate, plot))}")
