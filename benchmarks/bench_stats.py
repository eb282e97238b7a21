"""Four ways to watch a canary's error rate, on the same simulated streams.

Baseline error rate 1%, MDE +0.5 points (+50%), one-sided (only harm matters), alpha 0.05, 100
looks over a horizon of twice the fixed-horizon sample size. Deciders: naive peeking of a fixed
z test, a Flagger-style static threshold, a Kayenta-style Mann-Whitney per interval, and lockgate's
SequentialPolicy (default guardrails: error rate and p99 latency, Bonferroni across them; the
latency of both arms is drawn from the same distribution). Prints a table and writes
benchmarks/results/stats.json.

Run: python benchmarks/bench_stats.py [--runs 2000]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from lockgate.stats import (
    IntervalMannWhitney,
    NaivePeeking,
    PolicyDecider,
    SequentialPolicy,
    StaticThreshold,
    StreamSpec,
    VariantStats,
    peeking_false_alarm_rate,
    sample_size_two_proportions,
    simulate_streams,
)

BASELINE_RATE = 0.01
MDE = 0.005
ALPHA = 0.05
LOOKS = 100
DECIDERS = ("naive", "threshold", "mann_whitney", "lockgate")


def _deciders(horizon: int) -> list[Any]:
    return [
        NaivePeeking(alpha=ALPHA),
        StaticThreshold(max_error_rate=BASELINE_RATE + MDE, failed_checks=5),
        IntervalMannWhitney(alpha=ALPHA),
        PolicyDecider(SequentialPolicy(alpha=ALPHA, error_rate_mde=MDE / BASELINE_RATE, max_samples=horizon)),
    ]


def _updates_per_s(rng: np.random.Generator) -> float:
    """Requests recorded per second through the vectorised VariantStats.record_many."""
    batch = 100_000
    latencies = 20.0 * np.exp(0.5 * rng.standard_normal(batch))
    errors = rng.random(batch) < 0.01
    stats = VariantStats()
    stats.record_many(latencies, errors)  # warm-up
    repeats = 50
    start = time.perf_counter()
    for _ in range(repeats):
        stats.record_many(latencies, errors)
    return repeats * batch / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20251123)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/stats.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()

    fixed_n = sample_size_two_proportions(BASELINE_RATE, MDE, alpha=ALPHA, alternative="greater")
    horizon = 2 * fixed_n
    per_look = 2 * -(-horizon // LOOKS)  # both arms; rounded up so the last look reaches the horizon
    results: dict[str, dict[str, Any]] = {
        name: {"fpr": None, "power": {}, "median_n": {}} for name in DECIDERS
    }
    scenarios = {"aa": 0.0, "1x": 1.0, "2x": 2.0, "4x": 4.0}
    for label, multiple in scenarios.items():
        spec = StreamSpec(
            looks=LOOKS,
            requests_per_look=per_look,
            baseline_error_rate=BASELINE_RATE,
            candidate_error_rate=BASELINE_RATE + multiple * MDE,
            latency_median_ms=20.0,
        )
        out = simulate_streams(rng, spec, _deciders(horizon), runs=args.runs)
        for name in DECIDERS:
            outcome = out[name]
            if label == "aa":
                results[name]["fpr"] = outcome.rollback_rate
            else:
                results[name]["power"][label] = outcome.rollback_rate
                median = outcome.median_n_to_rollback
                results[name]["median_n"][label] = median if np.isfinite(median) else None

    peeking = {
        str(k): peeking_false_alarm_rate(rng, looks=k, runs=20_000, alpha=ALPHA) for k in (1, 5, 20, 100)
    }
    updates = _updates_per_s(rng)
    lockgate = results["lockgate"]
    targets = {
        "lockgate_fpr_at_most_alpha": lockgate["fpr"] <= ALPHA,
        "lockgate_median_n_2x_at_most_half_fixed_n": (
            lockgate["median_n"]["2x"] is not None and lockgate["median_n"]["2x"] <= 0.5 * fixed_n
        ),
        "updates_per_s_at_least_1e6": updates >= 1_000_000,
    }
    report = {
        **results,
        "fixed_n": fixed_n,
        "updates_per_s": updates,
        "setup": {
            "baseline_error_rate": BASELINE_RATE,
            "mde_absolute": MDE,
            "alpha": ALPHA,
            "alternative": "greater (candidate worse)",
            "power_target_for_fixed_n": 0.8,
            "looks": LOOKS,
            "horizon_per_arm": horizon,
            "runs": args.runs,
            "seed": args.seed,
            "median_n": "median requests per arm to a rollback over all runs, runs without one "
            "counted as never (null when under half the runs rolled back)",
            "threshold_rule": f"interval error rate > {BASELINE_RATE + MDE}, 5 failed intervals",
            "mann_whitney_rule": "one-sided U test on each interval's 0/1 errors at alpha",
            "naive_rule": "one-sided pooled z test on cumulative counts at every look",
        },
        "peeking_fpr_two_sided_z": peeking,
        "targets_met": targets,
        "python": platform.python_version(),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    def fmt(value: float | None, pattern: str) -> str:
        return "never" if value is None else format(value, pattern)

    print(f"fixed-horizon n per arm (power 0.8, one-sided alpha {ALPHA}): {fixed_n}")
    print(f"horizon {horizon} per arm, {LOOKS} looks, {args.runs} runs per scenario\n")
    header = f"{'decider':<13}{'fpr':>7}" + "".join(
        f"{'power ' + k:>10}{'median_n ' + k:>13}" for k in ("1x", "2x", "4x")
    )
    print(header)
    for name in DECIDERS:
        row = results[name]
        line = f"{name:<13}{row['fpr']:>7.3f}"
        for k in ("1x", "2x", "4x"):
            line += f"{row['power'][k]:>10.3f}{fmt(row['median_n'][k], '.0f'):>13}"
        print(line)
    print(
        "\npeeking a two-sided z test (A/A): " + ", ".join(f"{k} looks {v:.3f}" for k, v in peeking.items())
    )
    print(f"accumulator updates per second (vectorised record_many): {updates:,.0f}")
    for target, met in targets.items():
        print(f"target {target}: {'met' if met else 'MISSED'}")
    print(f"wrote {args.out} in {report['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
