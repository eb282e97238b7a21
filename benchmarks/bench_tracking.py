"""Metric logging cost: ``lockgate.track`` (batched) against a plain ``mlflow.log_metric`` loop.

Both log the same 10,000 metric points to the same MLflow store (SQLite under a temporary
LOCKGATE_HOME); the script checks both stored exactly the same values, prints a table and writes
``benchmarks/results/tracking.json``. Target: ``speedup`` (plain time / lockgate time) >= 10.

    python benchmarks/bench_tracking.py [--points 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "tracking.json"


def _values(points: int) -> list[tuple[str, float, int]]:
    keys = ("loss", "accuracy", "lr", "grad_norm")
    return [(keys[i % len(keys)], 1.0 / (i + 1), i // len(keys)) for i in range(points)]


def run_lockgate(points: list[tuple[str, float, int]]) -> tuple[float, str]:
    import lockgate

    started = time.perf_counter()
    with lockgate.track(run_name="bench-lockgate", capture_env=False) as run:
        for key, value, step in points:
            run.log_metric(key, value, step=step)
    return time.perf_counter() - started, run.run_id


def run_plain(points: list[tuple[str, float, int]], experiment_id: str) -> tuple[float, str]:
    import mlflow

    started = time.perf_counter()
    with mlflow.start_run(experiment_id=experiment_id, run_name="bench-plain") as run:
        for key, value, step in points:
            mlflow.log_metric(key, value, step=step)
    return time.perf_counter() - started, run.info.run_id


def stored(run_id: str) -> dict[str, list[tuple[int, float]]]:
    from lockgate.tracking.connection import connect

    client = connect().client
    out = {}
    for key in ("loss", "accuracy", "lr", "grad_norm"):
        history = client.get_metric_history(run_id, key)
        out[key] = sorted((m.step, m.value) for m in history)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="lockgate runs (median taken)")
    parser.add_argument("--plain-repeats", type=int, default=1, help="plain runs (slow: ~10 ms/point)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LOCKGATE_HOME"] = str(Path(tmp) / ".lockgate")
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
        from lockgate.tracking.connection import connect

        conn = connect()
        experiment_id = conn.experiment_id()
        points = _values(args.points)

        run_lockgate(points[:10])  # warm up imports and the store on both paths
        run_plain(points[:10], experiment_id)

        lock_times, lock_ids = zip(*(run_lockgate(points) for _ in range(args.repeats)), strict=True)
        plain_times, plain_ids = zip(
            *(run_plain(points, experiment_id) for _ in range(args.plain_repeats)), strict=True
        )
        same = stored(lock_ids[-1]) == stored(plain_ids[-1])
        count = sum(len(v) for v in stored(lock_ids[-1]).values())

    lock_s, plain_s = statistics.median(lock_times), statistics.median(plain_times)
    result = {
        "points": args.points,
        "lockgate_s": round(lock_s, 4),
        "plain_s": round(plain_s, 4),
        "lockgate_points_per_s": round(args.points / lock_s, 1),
        "plain_points_per_s": round(args.points / plain_s, 1),
        "speedup": round(plain_s / lock_s, 2),
        "same_values": same,
        "stored_points": count,
        "repeats": {"lockgate": args.repeats, "plain": args.plain_repeats},
        "store": "sqlite (MLflow SqlAlchemyStore)",
        "target": {"speedup": 10},
        "meets_target": plain_s / lock_s >= 10 and same,
    }
    print(f"{'path':<28}{'seconds':>10}{'points/s':>12}")
    print(f"{'plain mlflow.log_metric':<28}{plain_s:>10.3f}{args.points / plain_s:>12.0f}")
    print(f"{'lockgate.track (batched)':<28}{lock_s:>10.3f}{args.points / lock_s:>12.0f}")
    print(f"speedup {result['speedup']}x (target >= 10); same values stored: {same} ({count} points)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
