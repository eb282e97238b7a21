"""Monitoring overhead: throughput lost to metrics, live drift sketches and request capture.

Servers of the same model, each serving one deployment (all traffic on its baseline) from its
own SQLite store, under the same load (wrk -t1, 16 connections, one row per request):

- ``off``: ``--no-metrics``, no drift reference, no capture (the peer);
- ``metrics``: Prometheus metrics only;
- ``metrics + drift``: and ``--drift-reference`` (one request in 10 sketched);
- ``on``: and ``--capture-every 100`` (one request in 100 written to the store for replay);
- ``on + access log``: the same, with ``--log-format json --access-log`` writing a line per
  request to a file.

All are up at once and their runs alternate (off, metrics, ..., off, ...), so a change in the
machine's background load falls on all of them; each figure is the median of the runs.
``overhead_fraction`` = 1 - on / off (target <= 0.05); ``access_log_overhead_fraction`` = 1 -
(on + access log) / on; ``overhead_by_part`` is each step's own loss against the one before.
Throughput on a shared machine is noisy, so each run also reads the server's own CPU time
(user + system, from /proc) and divides it by the requests answered: ``cpu_us_per_request`` per
server, and ``cpu_overhead_fraction`` = 1 - off / on of those (the share of the monitored server's
CPU spent on monitoring). Afterwards the capturing server's store is read back, to show the
capture really ran. Writes benchmarks/results/monitor.json and prints a table. Usage:
    python benchmarks/bench_monitor.py [--duration-s 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from bench_rollout import run_wrk
from bench_serving import ensure_wrk, log_model, stop

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
OUT = ROOT / "benchmarks" / "results" / "monitor.json"
CAPTURE_EVERY = 100
DRIFT_SAMPLE_EVERY = 10


def start(cmd: list[str], url: str, env: dict[str, str], log: BinaryIO | int) -> subprocess.Popen[bytes]:
    """Start a server (its logs to ``log``) and wait until it is ready."""
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env={**os.environ, **env}, cwd=ROOT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {cmd}")
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server did not become ready: {cmd}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def snapshot_reference(work: Path, env: dict[str, str]) -> str:
    """Version the training table as a dataset, the drift reference the server loads."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    table = work / "train.csv"
    pd.DataFrame(data.data, columns=list(data.feature_names)).to_csv(table, index=False)
    subprocess.run(
        [PYTHON, "-m", "lockgate.cli.main", "data", "snapshot", str(table), "--name", "bench-train"],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return "bench-train@1"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=18110)
    args = parser.parse_args()
    wrk_bin = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="lockgate-bench-monitor-"))
    model_path, body = log_model(work)
    env = {"LOCKGATE_HOME": str(work / "home")}
    reference = snapshot_reference(work, env)
    spec_file = work / "bench.yaml"
    spec_file.write_text(
        json.dumps(
            {
                "name": "bench",
                "variants": {"blue": str(model_path), "green": str(model_path)},
                "baseline": "blue",
                "candidate": "green",
                "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 10**9}]},
            }
        )
    )
    serve = [PYTHON, "-m", "lockgate.serving", "--log-level", "warning", "--deployment", str(spec_file)]
    serve += ["--no-follow-registry"]
    drift = ["--drift-reference", reference, "--drift-sample-every", str(DRIFT_SAMPLE_EVERY)]
    monitored = [*drift, "--capture-every", str(CAPTURE_EVERY)]
    configs: dict[str, list[str]] = {
        "off": ["--no-metrics"],
        "metrics": [],
        "metrics + drift": drift,
        "on": monitored,
        "on + access log": [*monitored, "--log-format", "json", "--access-log"],
    }
    logs = {name: (work / f"{index}.log").open("wb") for index, name in enumerate(configs)}
    servers: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    try:
        for index, (name, flags) in enumerate(configs.items()):
            port = args.port + index
            urls[name] = f"http://127.0.0.1:{port}"
            store = ["--store", f"sqlite:///{work / f'store-{index}.db'}"]
            command = [*serve, *store, "--port", str(port), *flags]
            servers[name] = start(command, urls[name] + "/v2/health/ready", env, logs[name])
        for url in urls.values():
            run_wrk(wrk_bin, url + "/invocations", body, 2)  # warm-up
        rps: dict[str, list[float]] = {name: [] for name in configs}
        cpu_us: dict[str, list[float]] = {name: [] for name in configs}
        errors = 0
        for _ in range(args.runs):
            for name, url in urls.items():
                before = cpu_s(servers[name].pid)
                result = run_wrk(wrk_bin, url + "/invocations", body, args.duration_s)
                used = cpu_s(servers[name].pid) - before
                rps[name].append(result["rps"])
                cpu_us[name].append(round(used / result["requests"] * 1e6, 2))
                errors += int(result["non_2xx"] + result["connection_errors"])
        status = httpx.get(urls["on"] + "/v2/health/ready", timeout=10).status_code
    finally:
        for proc in servers.values():
            stop(proc)
        for handle in logs.values():
            handle.close()
    captured, access_lines = _read_back(work)
    shutil.rmtree(work, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in rps.items()}
    cpu = {name: statistics.median(values) for name, values in cpu_us.items()}
    results: dict[str, Any] = {
        "overhead_fraction": round(1.0 - medians["on"] / medians["off"], 4),
        "access_log_overhead_fraction": round(1.0 - medians["on + access log"] / medians["on"], 4),
        "overhead_by_part": {
            part: round(1.0 - medians[name] / medians[before], 4)
            for part, name, before in (
                ("metrics", "metrics", "off"),
                ("drift", "metrics + drift", "metrics"),
                ("capture", "on", "metrics + drift"),
                ("access_log", "on + access log", "on"),
            )
        },
        "rps": {name: round(value, 1) for name, value in medians.items()},
        "cpu_overhead_fraction": round(1.0 - cpu["off"] / cpu["on"], 4),
        "cpu_us_per_request": {name: round(value, 2) for name, value in cpu.items()},
        "capture_every": CAPTURE_EVERY,
        "drift_sample_every": DRIFT_SAMPLE_EVERY,
        "captured_rows": captured,
        "access_log_lines": access_lines,
        "errors": errors,
        "runs": args.runs,
        "duration_s": args.duration_s,
    }
    assert status == 200
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print("runs (req/s): " + "; ".join(f"{name} {values}" for name, values in rps.items()))
    print(
        "runs (server CPU µs a request): " + "; ".join(f"{name} {values}" for name, values in cpu_us.items())
    )
    print(f"\n{'measure':<40}{'value':>12}")
    for key, value in results.items():
        for name, shown in value.items() if isinstance(value, dict) else [(None, value)]:
            print(f"{key if name is None else f'{key}.{name}':<40}{shown:>12}")
    checks = [
        ("overhead_fraction <= 0.05", results["overhead_fraction"] <= 0.05),
        ("captured_rows > 0", captured > 0),
        ("errors == 0", errors == 0),
    ]
    print(f"\n{'target':<32}{'met':>6}")
    for name, met in checks:
        print(f"{name:<32}{'yes' if met else 'NO':>6}")


def _read_back(work: Path) -> tuple[int, int]:
    """Rows the capturing server wrote (the newest 10,000 are kept), and access lines logged."""
    from lockgate.rollout.sqlstore import SqlStore

    store = SqlStore(f"sqlite:///{work / 'store-3.db'}")
    try:
        captured = len(store.captures("bench"))
    finally:
        store.close()
    lines = (work / "4.log").read_bytes().count(b'"logger":"lockgate.access"')
    return captured, lines


if __name__ == "__main__":
    main()
