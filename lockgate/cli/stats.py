"""``lockgate plan-test``, ``simulate-stats`` and ``simulate``: plan and rehearse before real traffic."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lockgate.cli.output import console, fmt_duration, parse_rate, record_written
from lockgate.errors import UserError


def plan_test_command(
    baseline: Annotated[
        float | None, typer.Option(help="Baseline rate of the metric, e.g. 0.10 for 10% (with --spec: 0.01).")
    ] = None,
    mde: Annotated[
        float | None, typer.Option(help="Smallest absolute change worth detecting, e.g. 0.01.")
    ] = None,
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            help="Plan a rollout spec instead: when each stage has its evidence at --traffic, "
            "for a candidate as good as the baseline.",
        ),
    ] = None,
    latency_sigma: Annotated[
        float, typer.Option(help="With --spec: spread of log-latency per request (0.5: p99 ~3x p50).")
    ] = 0.5,
    design_effect: Annotated[
        float,
        typer.Option(help="With --spec: variance inflation from sticky users (1: independent requests)."),
    ] = 1.0,
    alpha: Annotated[float, typer.Option(help="False-positive rate.")] = 0.05,
    power: Annotated[float, typer.Option(help="Chance of detecting a true effect of size MDE.")] = 0.8,
    split: Annotated[
        float, typer.Option(help="Candidate's share of traffic (0.5 for A/B, 0.05 canary).")
    ] = 0.5,
    traffic: Annotated[
        str | None, typer.Option(help="Request rate, e.g. 200/s, to estimate duration.")
    ] = None,
    one_sided: Annotated[bool, typer.Option("--one-sided", help="Test one direction only.")] = False,
) -> None:
    """Samples per arm and expected duration of a fixed-horizon test of two proportions, or, with
    --spec, when each stage of a rollout has its evidence at your traffic.

    Examples:  lockgate plan-test --baseline 0.10 --mde 0.01 --alpha 0.05 --power 0.8 --traffic 200/s

               lockgate plan-test --spec examples/specs/canary.yaml --traffic 300/s --design-effect 1.3
    """
    from lockgate.stats._arguments import Alternative
    from lockgate.stats.power import sample_size_two_proportions

    if spec_file is not None:
        _plan_spec(spec_file, traffic, baseline, latency_sigma, design_effect, power)
        return
    if baseline is None or mde is None:
        raise UserError(
            "plan-test needs --baseline and --mde (a fixed-horizon test), or --spec (a rollout)",
            hint="e.g. lockgate plan-test --baseline 0.10 --mde 0.01 --traffic 200/s",
        )
    if not 0.0 < split < 1.0:
        raise UserError(f"--split {split} is outside (0, 1)", hint="e.g. 0.5 for an even A/B split")
    rate = parse_rate(traffic)
    ratio = split / (1.0 - split)
    alternative: Alternative = ("greater" if mde > 0 else "less") if one_sided else "two-sided"
    n_baseline = sample_size_two_proportions(
        baseline, mde, alpha=alpha, power=power, ratio=ratio, alternative=alternative
    )
    n_candidate = math.ceil(n_baseline * ratio)
    total = n_baseline + n_candidate
    table = Table(title="fixed-horizon test plan (two proportions)")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("baseline rate → candidate rate", f"{baseline:.4g} → {baseline + mde:.4g}")
    table.add_row("alpha / power / test", f"{alpha} / {power} / {alternative}")
    table.add_row("candidate share of traffic", f"{split:.0%}")
    table.add_row("samples, baseline arm", f"{n_baseline:,}")
    table.add_row("samples, candidate arm", f"{n_candidate:,}")
    table.add_row("samples, total", f"{total:,}")
    if rate is not None:
        table.add_row("expected duration", f"{fmt_duration(total / rate)} at {rate:g} requests/s")
    console.print(table)
    console.print(
        "lockgate's sequential policy may look at every request without inflating alpha, and stops "
        "early when the effect is larger than the MDE (see docs/statistics.md)."
    )


def _plan_spec(
    spec_file: Path,
    traffic: str | None,
    baseline: float | None,
    latency_sigma: float,
    design_effect: float,
    power: float,
) -> None:
    from lockgate.rollout import load_spec, plan
    from lockgate.rollout.evidence import evidence_plan

    rate = parse_rate(traffic)
    if rate is None:
        raise UserError(
            "--spec needs --traffic", hint="e.g. --traffic 300/s, the requests the deployment gets"
        )
    spec = load_spec(spec_file)
    stages = evidence_plan(
        spec,
        rate,
        baseline_error_rate=0.01 if baseline is None else baseline,
        latency_log_sd=latency_sigma,
        design_effect=design_effect,
        power=power,
    )
    table = Table(
        title=f"{spec.name}: evidence at {rate:g} requests/s ({power:.0%} chance, candidate as good)"
    )
    for column in (
        "stage",
        "candidate share",
        "min duration",
        "max duration",
        "evidence after",
        "stage ends",
    ):
        table.add_column(column, justify="right")
    for stage in stages:
        table.add_row(
            str(stage.index),
            f"{stage.candidate_share:.0%}",
            fmt_duration(stage.min_duration_s),
            "none" if stage.max_duration_s is None else fmt_duration(stage.max_duration_s),
            "never" if stage.evidence_s is None else fmt_duration(stage.evidence_s),
            f"{spec.analysis.on_inconclusive} (no evidence)"
            if stage.ends_s is None
            else fmt_duration(stage.ends_s),
        )
    console.print(table)
    if stages and stages[-1].ends_s is not None and len(stages) == len(plan(spec)):
        total = sum(stage.ends_s or 0.0 for stage in stages)
        console.print(f"a candidate as good as the baseline is promoted after about {fmt_duration(total)}")
    else:
        console.print(
            "[bold]not enough traffic for this spec[/]: widen the margins (analysis.guardrails), lengthen "
            "the stage (max_duration_s), or raise its weight"
        )


def simulate_stats_command(
    effect: Annotated[
        float, typer.Option(help="Absolute increase of the candidate's error rate (0: A/A).")
    ] = 0.0,
    looks: Annotated[int, typer.Option(help="How many times the numbers are looked at.")] = 100,
    runs: Annotated[int, typer.Option(help="Simulated canaries.")] = 2000,
    baseline: Annotated[float, typer.Option(help="Baseline error rate.")] = 0.01,
    requests_per_look: Annotated[int, typer.Option(help="Requests (both arms) between looks.")] = 240,
    alpha: Annotated[float, typer.Option(help="Level of each decider.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw rollbacks by look to this .svg or .png file.")
    ] = None,
) -> None:
    """False-alarm rate (effect 0) or power of four ways to watch a canary continuously.

    The deciders: naive peeking at a fixed-horizon z test, a Flagger-style static threshold
    (1.5x the baseline rate, 5 failed intervals), a Kayenta-style Mann-Whitney per interval, and
    lockgate's sequential policy.

    Example:  lockgate simulate-stats --effect 0 --looks 100 --runs 2000 --plot peeking.svg
    """
    import numpy as np

    from lockgate.stats.decision import SequentialPolicy
    from lockgate.stats.simulation import (
        IntervalMannWhitney,
        NaivePeeking,
        PolicyDecider,
        StaticThreshold,
        StreamDecider,
        StreamSpec,
        simulate_streams,
    )

    spec = StreamSpec(
        looks=looks,
        requests_per_look=requests_per_look,
        baseline_error_rate=baseline,
        candidate_error_rate=baseline + effect,
    )
    deciders: list[StreamDecider] = [
        NaivePeeking(alpha=alpha),
        StaticThreshold(max_error_rate=baseline * 1.5, failed_checks=5),
        IntervalMannWhitney(alpha=alpha),
        PolicyDecider(SequentialPolicy(alpha=alpha, max_samples=None)),
    ]
    with console.status(f"simulating {runs} canaries × {looks} looks..."):
        outcomes = simulate_streams(np.random.default_rng(seed), spec, deciders, runs=runs)
    label = "false rollbacks (A/A)" if effect == 0 else "rollbacks (power)"
    table = Table(title=f"error rate {baseline:g} → {baseline + effect:g}, {looks} looks, {runs} runs")
    table.add_column("decider")
    table.add_column(label, justify="right")
    table.add_column("median requests/arm to rollback", justify="right")
    for name, outcome in outcomes.items():
        median = outcome.median_n_to_rollback
        table.add_row(
            name,
            f"{outcome.rollback_rate:.3f}",
            f"{median:,.0f}" if math.isfinite(median) else "never (<50%)",
        )
    console.print(table)
    if effect == 0:
        console.print(f"a valid decider stays at or below alpha = {alpha} however often it looks")
    if plot is not None:
        from lockgate.figures.peeking import plot_peeking

        plot_peeking(
            outcomes, plot, looks=looks, requests_per_look=requests_per_look, alpha=alpha, is_aa=effect == 0
        )
        console.print(f"plot written to {record_written(plot)}")


def simulate_command(
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="Deployment spec YAML (default: a 3-step canary).")
    ] = None,
    baseline_error_rate: Annotated[float, typer.Option(help="Simulated baseline error rate.")] = 0.01,
    candidate_error_rate: Annotated[float, typer.Option(help="Simulated candidate error rate.")] = 0.01,
    baseline_latency_ms: Annotated[float, typer.Option(help="Baseline median latency (ms).")] = 10.0,
    candidate_latency_ms: Annotated[float, typer.Option(help="Candidate median latency (ms).")] = 10.0,
    latency_shape: Annotated[
        str, typer.Option(help="Latency distribution: lognormal, pareto (tail index 1) or bimodal.")
    ] = "lognormal",
    users: Annotated[int, typer.Option(help="Distinct users; each sends its own routing key.")] = 10_000,
    error_spread: Annotated[
        float,
        typer.Option(
            help="How much users differ in error propensity: each user's is a Beta draw with this "
            "concentration (a + b) around the variant's rate; 0: all users alike.",
        ),
    ] = 200.0,
    user_latency_sigma: Annotated[
        float, typer.Option(help="Spread of per-user latency (lognormal sigma of a user's scale).")
    ] = 0.3,
    baseline_conversion_rate: Annotated[
        float | None, typer.Option(help="Each answer converts with this probability (feedback).")
    ] = None,
    candidate_conversion_rate: Annotated[
        float | None, typer.Option(help="The candidate's conversion rate (default: the baseline's).")
    ] = None,
    outcome_delay_s: Annotated[
        float, typer.Option(help="Mean delay (s) before an outcome arrives (exponential).")
    ] = 0.0,
    requests: Annotated[int, typer.Option(help="Most synthetic requests to send.")] = 1_000_000,
    rate: Annotated[float, typer.Option(help="Requests per simulated second.")] = 500.0,
    tick_s: Annotated[float, typer.Option(help="Seconds between controller looks.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    policy_name: Annotated[
        str,
        typer.Option(
            "--policy",
            help="spec: the spec's analysis section, as the server runs it (sequential with margins "
            "by default); threshold: roll back above 2x the baseline's error rate (naive).",
        ),
    ] = "spec",
    plot: Annotated[Path | None, typer.Option("--plot", help="Also draw it to this .svg or .png.")] = None,
) -> None:
    """Run a rollout on synthetic traffic through the real router, controller and policy.

    Sticky users who differ (error propensity, latency), heavy-tailed latency and late outcomes,
    with no server and no clock: a million requests take about a second.

    Examples:  lockgate simulate --candidate-error-rate 0.03

               lockgate simulate --spec canary.yaml --latency-shape pareto --candidate-latency-ms 15

               lockgate simulate --spec examples/specs/ab_conversions.yaml --baseline-conversion-rate 0.1 \
                   --candidate-conversion-rate 0.11 --outcome-delay-s 60
    """
    import time

    from lockgate.rollout import ThresholdPolicy, load_spec, parse_spec, policy_for, simulate
    from lockgate.testing import SimulatedTraffic, VariantBehaviour

    if spec_file is not None:
        spec = load_spec(spec_file)
    else:
        step = {"min_duration_s": 10, "min_requests": 300, "max_duration_s": 600}
        spec = parse_spec(
            {
                "name": "demo",
                "variants": {"stable": "models:/demo/1", "canary": "models:/demo/2"},
                "baseline": "stable",
                "candidate": "canary",
                "strategy": {
                    "type": "canary",
                    "steps": [{"weight_percent": w, **step} for w in (10, 25, 50)],
                },
            }
        )
    if policy_name not in ("threshold", "spec"):
        raise UserError(
            f"--policy must be threshold or spec, got '{policy_name}'",
            hint="spec judges with the spec's analysis section, as the server does",
        )
    if error_spread < 0:
        raise UserError(f"--error-spread {error_spread} is negative", hint="use 0 for users alike, e.g. 200")
    shape = latency_shape if latency_shape in ("lognormal", "pareto", "bimodal") else None
    if shape is None:
        raise UserError(
            f"--latency-shape '{latency_shape}' is unknown", hint="use lognormal, pareto or bimodal"
        )

    def behaviour(error_rate: float, latency_ms: float, conversion: float | None) -> VariantBehaviour:
        return VariantBehaviour(
            error_rate=error_rate,
            latency_median_ms=latency_ms,
            latency_shape=shape,  # type: ignore[arg-type]
            conversion_rate=conversion,
        )

    behaviours = {
        name: behaviour(baseline_error_rate, baseline_latency_ms, baseline_conversion_rate)
        for name in spec.variants
    }
    behaviours[spec.candidate] = behaviour(
        candidate_error_rate,
        candidate_latency_ms,
        baseline_conversion_rate if candidate_conversion_rate is None else candidate_conversion_rate,
    )
    mean = min(max(baseline_error_rate, 1e-3), 0.5)
    traffic = SimulatedTraffic(
        behaviours,
        requests_per_s=rate,
        users=users,
        user_error_beta=(error_spread * mean, error_spread * (1 - mean)) if error_spread > 0 else None,
        user_latency_sigma=user_latency_sigma,
        outcome_delay_s=outcome_delay_s,
        seed=seed,
    )
    policy = (
        policy_for(spec)
        if policy_name == "spec"
        else ThresholdPolicy(min_requests=200, max_error_rate_ratio=2.0)
    )
    started = time.perf_counter()
    result = simulate(spec, policy, traffic, seed=seed, total_requests=requests, tick_s=tick_s)
    elapsed = time.perf_counter() - started
    console.print(result.table(), markup=False, highlight=False)
    console.print(
        f"final phase [bold]{result.state.phase.value}[/] after {result.requests_sent:,} requests "
        f"({result.duration_s:.0f} simulated seconds, {elapsed * 1000:.0f} ms of real time)"
    )
    if plot is not None:
        from lockgate.figures.timeline import plot_timeline

        console.print(f"plot written to {record_written(plot_timeline(result, plot))}")
