"""The decisions lockgate makes on a user's behalf, measured as error rates on realistic traffic.

Each run drives the real router, controller and default policy (``lockgate.rollout.simulate``) on
``examples/specs/canary.yaml`` with its default margins (errors +0.5 points, latency +10%): sticky
keyed traffic from heterogeneous users (10,000 users; each user's error propensity a Beta(2, 198)
draw, mean 1%; each user's latency scaled by a lognormal factor, sigma 0.3), 1,000 requests a
second, the controller looking every 5 simulated seconds, a new routing salt every run. The A/B
scenarios run ``examples/specs/ab_conversions.yaml``: conversions of 10% (per-user Beta(2, 18)),
joined as feedback after an exponential delay of 60 s on average.

Scenarios: A/A; a candidate exactly the error margin worse (1.5%); twice the error rate (2%); A/A
under lognormal, Pareto(1) and bimodal latency; 1.5x the latency at every quantile; an A/B test
where one variant converts 10% better (half the runs the candidate, half the baseline), and A/A.

Prints a table and writes benchmarks/results/decisions.json. Any seed gives the same conclusions
within Monte-Carlo error (each proportion comes with its standard error).

Run: python benchmarks/bench_decisions.py [--runs 400] [--seed 20261203] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scipy.stats import norm

from lockgate.optimize.cpu import cpu_info
from lockgate.rollout import load_spec, plan, policy_for, simulate
from lockgate.stats.units import ratio_contrast
from lockgate.testing import SimulatedTraffic, VariantBehaviour

ROOT = Path(__file__).resolve().parents[1]
CANARY = ROOT / "examples" / "specs" / "canary.yaml"
AB = ROOT / "examples" / "specs" / "ab_conversions.yaml"
USERS = 10_000
RATE = 1_000.0
TICK_S = 5.0
ERROR_RATE = 0.01
USER_ERROR_BETA = (2.0, 198.0)
USER_LATENCY_SIGMA = 0.3
LATENCY_MS = 20.0
CONVERSION = 0.10
USER_CONVERSION_BETA = (2.0, 18.0)
OUTCOME_DELAY_S = 60.0


@dataclass(frozen=True)
class Scenario:
    name: str
    spec: str  # "canary" or "ab"
    baseline: VariantBehaviour
    candidate: VariantBehaviour


def _variant(
    error_rate: float = ERROR_RATE,
    latency_ms: float = LATENCY_MS,
    shape: str = "lognormal",
    conversion: float | None = None,
) -> VariantBehaviour:
    return VariantBehaviour(
        error_rate=error_rate,
        latency_median_ms=latency_ms,
        latency_shape=shape,  # type: ignore[arg-type]
        conversion_rate=conversion,
    )


SCENARIOS = [
    Scenario("aa", "canary", _variant(), _variant()),
    Scenario("worse_at_margin", "canary", _variant(), _variant(error_rate=ERROR_RATE + 0.005)),
    Scenario("worse_2x", "canary", _variant(), _variant(error_rate=2 * ERROR_RATE)),
    Scenario("latency_aa_pareto", "canary", _variant(shape="pareto"), _variant(shape="pareto")),
    Scenario("latency_aa_bimodal", "canary", _variant(shape="bimodal"), _variant(shape="bimodal")),
    Scenario("latency_worse", "canary", _variant(), _variant(latency_ms=1.5 * LATENCY_MS)),
    Scenario(
        "ab_candidate_better", "ab", _variant(conversion=CONVERSION), _variant(conversion=1.1 * CONVERSION)
    ),
    Scenario(
        "ab_baseline_better", "ab", _variant(conversion=1.1 * CONVERSION), _variant(conversion=CONVERSION)
    ),
    Scenario("ab_aa", "ab", _variant(conversion=CONVERSION), _variant(conversion=CONVERSION)),
]


def _run(job: tuple[Scenario, int, int]) -> dict[str, Any]:
    """One rollout; what it ended as, when, and the error contrast's variance (for fixed_s)."""
    scenario, seed, index = job
    spec = load_spec(CANARY if scenario.spec == "canary" else AB)
    spec = replace(spec, salt=f"bench-{seed}-{scenario.name}-{index}")
    traffic = SimulatedTraffic(
        {spec.baseline: scenario.baseline, spec.candidate: scenario.candidate},
        requests_per_s=RATE,
        users=USERS,
        user_error_beta=USER_ERROR_BETA,
        user_latency_sigma=USER_LATENCY_SIGMA,
        user_conversion_beta=USER_CONVERSION_BETA,
        outcome_delay_s=OUTCOME_DELAY_S,
        seed=seed * 1_000_003 + index,
    )
    result = simulate(
        spec, policy_for(spec), traffic, seed=seed * 7_919 + index, total_requests=10**10, tick_s=TICK_S
    )
    end = result.timeline[-1]
    base, cand = result.stats[spec.baseline].units, result.stats[spec.candidate].units
    _, variance = ratio_contrast(cand.errors, cand.requests, base.errors, base.requests)
    return {
        "phase": result.state.phase.value,
        "at_s": end.at_s,
        "reason": end.reason[:200],
        "error_variance": variance,
    }


def _share(runs: list[dict[str, Any]], phase: str, *, within_s: float | None = None) -> float:
    hits = [r for r in runs if r["phase"] == phase and (within_s is None or r["at_s"] <= within_s)]
    return len(hits) / len(runs)


def _se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1.0 / n) / n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="runs per scenario (A/B: per direction half)")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "decisions.json")
    args = parser.parse_args()
    started = time.perf_counter()
    jobs: list[tuple[Scenario, int, int]] = []
    for scenario in SCENARIOS:
        count = (
            args.runs // 2 if scenario.name in ("ab_candidate_better", "ab_baseline_better") else args.runs
        )
        jobs.extend((scenario, args.seed, index) for index in range(count))
    with ProcessPoolExecutor(args.workers) as pool:
        outcomes = list(pool.map(_run, jobs, chunksize=8))
    by: dict[str, list[dict[str, Any]]] = {}
    for (scenario, _, _), outcome in zip(jobs, outcomes, strict=True):
        by.setdefault(scenario.name, []).append(outcome)

    canary = load_spec(CANARY)
    planned_s = sum(stage.min_duration_s for stage in plan(canary))
    n = args.runs

    def median_s(name: str, phase: str) -> float | None:
        times = [r["at_s"] for r in by[name] if r["phase"] == phase]
        return statistics.median(times) if times else None

    aa = by["aa"]
    report: dict[str, Any] = {
        "aa": {
            "false_rollback": _share(aa, "rolled_back"),
            "false_halt": _share(aa, "halted"),
            "promote": _share(aa, "promoted", within_s=planned_s),
            "promote_eventually": _share(aa, "promoted"),
            "median_s": median_s("aa", "promoted"),
        },
        "worse_at_margin": {
            "promote": _share(by["worse_at_margin"], "promoted"),
            "rollback": _share(by["worse_at_margin"], "rolled_back"),
            "median_s": median_s("worse_at_margin", "rolled_back"),
        },
    }
    # A fixed-horizon test of the same effect (+1 point) at power 0.8 and the harm test's level
    # (one-sided alpha / guardrails), with the variance each run measured (cluster-robust, at the
    # stage-1 allocation it was rolled back in): it needs v(t) = (effect / (z_a + z_b))^2, and
    # v falls as 1 / t.
    policy = policy_for(canary)
    alpha_each = policy.alpha / 2  # errors and latency
    z = norm.ppf(1 - alpha_each) + norm.ppf(0.8)
    effect = ERROR_RATE
    twice = by["worse_2x"]
    fixed = [r["error_variance"] * r["at_s"] * z * z / effect**2 for r in twice if r["error_variance"] > 0]
    fixed_s = statistics.median(fixed) if fixed else None
    report["worse_2x"] = {
        "rollback": _share(twice, "rolled_back"),
        "median_s": median_s("worse_2x", "rolled_back"),
        "fixed_s": fixed_s,
        "fixed_s_at_margin": None if fixed_s is None else fixed_s * (effect / 0.005) ** 2,
    }
    report["latency_aa"] = {
        shape: {
            "false_rollback": _share(by[name], "rolled_back"),
            "false_halt": _share(by[name], "halted"),
            "promote": _share(by[name], "promoted"),
        }
        # the A/A scenario's latency is lognormal already: its runs are the lognormal case
        for shape, name in (
            ("lognormal", "aa"),
            ("pareto", "latency_aa_pareto"),
            ("bimodal", "latency_aa_bimodal"),
        )
    }
    report["latency_worse"] = {
        "rollback": _share(by["latency_worse"], "rolled_back"),
        "median_s": median_s("latency_worse", "rolled_back"),
    }
    better, worse, ab_aa = by["ab_candidate_better"], by["ab_baseline_better"], by["ab_aa"]
    correct = sum(r["phase"] == "promoted" for r in better) + sum(r["phase"] == "rolled_back" for r in worse)
    report["primary"] = {
        "ab_correct": correct / (len(better) + len(worse)),
        "aa_false_winner": _share(ab_aa, "promoted"),
        "ab_median_s": statistics.median([r["at_s"] for r in better + worse]),
    }
    report.update(runs=n, users=USERS, seed=args.seed)
    targets = {
        "aa.false_rollback<=0.05": report["aa"]["false_rollback"] <= 0.05,
        "aa.false_halt<=0.01": report["aa"]["false_halt"] <= 0.01,
        "aa.promote>=0.80": report["aa"]["promote"] >= 0.80,
        "worse_at_margin.promote<=0.05": report["worse_at_margin"]["promote"] <= 0.05,
        "worse_2x.rollback>=0.99": report["worse_2x"]["rollback"] >= 0.99,
        "worse_2x.median_s<=0.5*fixed_s": fixed_s is not None
        and report["worse_2x"]["median_s"] is not None
        and report["worse_2x"]["median_s"] <= 0.5 * fixed_s,
        **{
            f"latency_aa.{shape}.false_rollback<=0.05": report["latency_aa"][shape]["false_rollback"] <= 0.05
            for shape in ("lognormal", "pareto", "bimodal")
        },
        "latency_worse.rollback>=0.90": report["latency_worse"]["rollback"] >= 0.90,
        "primary.ab_correct>=0.95": report["primary"]["ab_correct"] >= 0.95,
        "primary.aa_false_winner<=0.05": report["primary"]["aa_false_winner"] <= 0.05,
    }
    report["standard_errors"] = {
        "aa.false_rollback": _se(report["aa"]["false_rollback"], n),
        "aa.promote": _se(report["aa"]["promote"], n),
        "worse_at_margin.promote": _se(report["worse_at_margin"]["promote"], n),
        "primary.ab_correct": _se(report["primary"]["ab_correct"], len(better) + len(worse)),
    }
    report["targets_met"] = {key: bool(met) for key, met in targets.items()}
    report["setup"] = {
        "spec": "examples/specs/canary.yaml (default margins: errors +0.5 pp, latency +10%)",
        "ab_spec": "examples/specs/ab_conversions.yaml",
        "planned_duration_s": planned_s,
        "requests_per_s": RATE,
        "tick_s": TICK_S,
        "error_rate": ERROR_RATE,
        "user_error_beta": USER_ERROR_BETA,
        "user_latency_sigma": USER_LATENCY_SIGMA,
        "latency_median_ms": LATENCY_MS,
        "conversion_rate": CONVERSION,
        "user_conversion_beta": USER_CONVERSION_BETA,
        "outcome_delay_s": OUTCOME_DELAY_S,
        "fixed_s": "median over worse_2x runs of the time a fixed-horizon test of +1 point needs for power "
        f"0.8 at one-sided alpha {alpha_each:g}, from each run's own cluster-robust variance",
        "fixed_s_at_margin": "the same, sized for an effect of the margin (+0.5 point), as bench_stats does",
    }
    report["cpu"] = cpu_info().describe()
    report["python"] = platform.python_version()
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    print(f"{n} runs a scenario, {USERS:,} users, seed {args.seed}, {RATE:g} req/s, looks every {TICK_S:g} s")
    print(f"{'scenario':<24}{'promote':>9}{'rollback':>10}{'halt':>7}{'median s':>10}")
    for name, runs in by.items():
        times = [r["at_s"] for r in runs]
        print(
            f"{name:<24}{pct(_share(runs, 'promoted')):>9}{pct(_share(runs, 'rolled_back')):>10}"
            f"{pct(_share(runs, 'halted')):>7}{statistics.median(times):>10.0f}"
        )
    at_margin = report["worse_2x"]["fixed_s_at_margin"]
    print(
        f"worse_2x: median {report['worse_2x']['median_s']} s to roll back; a fixed-horizon test of the "
        f"same effect needs {pct(fixed_s)} s (sized for the margin: {pct(at_margin)} s)"
    )
    for target, met in targets.items():
        print(f"target {target}: {'met' if met else 'MISSED'}")
    print(f"wrote {args.out} in {report['elapsed_s']} s on {report['cpu']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
