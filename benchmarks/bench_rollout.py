"""Rollout costs: routing overhead of a two-variant canary, and switches under load.

1. ``overhead_fraction``: requests/s of one model served directly against the same model served as
   a two-variant canary (50/50, random buckets), same server stack, same load (wrk, 16 connections).
   Both servers run at once on two ports and the runs alternate (direct, canary, direct, ...), so a
   change in the machine's background load falls on both; the median of the runs is compared.
2. ``switches``: under constant wrk load on the canary server, a driver makes at least 20 switches
   (start → weights change, promote, rollback, redeploy) through the admin API; ``non_2xx`` and
   ``connection_errors`` are wrk's counts over the whole run.

Writes benchmarks/results/rollout.json and prints a table. Usage:
    python benchmarks/bench_rollout.py [--duration-s 10] [--runs 3] [--switches 24]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from bench_serving import ensure_wrk, log_model, start, stop

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
OUT = ROOT / "benchmarks" / "results" / "rollout.json"
TOKEN = "bench-token"


def run_wrk(wrk_bin: str, url: str, body: object, duration_s: int, connections: int = 16) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(json.dumps(body))}\n"
        )
    out = subprocess.run(
        [wrk_bin, "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "requests": float(total),
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
        "connection_errors": float(sum(int(g) for g in sockets.groups())) if sockets else 0.0,
    }


def spec(baseline_dir: Path, candidate_dir: Path, weight_percent: float = 50.0) -> dict[str, Any]:
    return {
        "name": "bench",
        "variants": {"blue": str(baseline_dir), "green": str(candidate_dir)},
        "baseline": "blue",
        "candidate": "green",
        "strategy": {"type": "canary", "steps": [{"weight_percent": weight_percent, "min_requests": 10**9}]},
    }


def switch_driver(url: str, dirs: tuple[Path, Path], wanted: int, stop_at: float, log: list[str]) -> None:
    """Make weight changes through the admin API until ``wanted`` are done or time runs out."""
    from lockgate.errors import Conflict
    from lockgate.serving.client import AdminClient

    blue, green = dirs
    with AdminClient(url, token=TOKEN) as client:
        weights = [10.0, 25.0, 50.0, 75.0]
        index = 0
        while len(log) < wanted and time.monotonic() < stop_at:
            weight = weights[index % len(weights)]
            client.deploy(spec(blue, green, weight))  # a new rollout: all traffic on the baseline
            client.command("bench", "start")  # switch: the canary takes its share
            log.append(f"start {weight:g}%")
            time.sleep(0.2)
            try:
                if index % 2:
                    client.command("bench", "promote")  # switch: everything to the candidate
                    log.append("promote")
                    blue, green = green, blue  # the promoted colour is the next baseline
                else:
                    client.command("bench", "rollback")  # switch: everything back
                    log.append("rollback")
            except Conflict:
                # the controller finished this rollout first (its policy decided): that was a switch
                event = client.history("bench")[-1]
                log.append(f"{event['action']} by {event['actor']} ({event['reason']})")
            time.sleep(0.2)
            index += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--switches", type=int, default=24)
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    wrk_bin = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="lockgate-bench-rollout-"))
    model_path, body = log_model(work)
    blue, green = work / "blue", work / "green"
    shutil.copytree(model_path, blue)
    shutil.copytree(model_path, green)
    direct_url = f"http://127.0.0.1:{args.port}"
    canary_url = f"http://127.0.0.1:{args.port + 1}"
    env = {"LOCKGATE_ADMIN_TOKEN": TOKEN, "LOCKGATE_HOME": str(work / "home")}
    serve = [PYTHON, "-m", "lockgate.serving", "--log-level", "warning"]
    direct = start([*serve, "--port", str(args.port), str(blue)], direct_url + "/v2/health/ready", env)
    spec_file = work / "canary.yaml"
    spec_file.write_text(json.dumps(spec(blue, green)))
    canary = start(
        [*serve, "--port", str(args.port + 1), "--deployment", str(spec_file), "--no-follow-registry"],
        canary_url + "/v2/health/ready",
        env,
    )
    try:
        httpx.post(
            f"{canary_url}/admin/deployments/bench/start",
            headers={"authorization": f"Bearer {TOKEN}"},
            json={},
            timeout=30,
        ).raise_for_status()
        for url in (direct_url, canary_url):
            run_wrk(wrk_bin, url + "/invocations", body, 2)  # warm-up
        direct_rps, canary_rps = [], []
        for _ in range(args.runs):
            direct_rps.append(run_wrk(wrk_bin, direct_url + "/invocations", body, args.duration_s)["rps"])
            canary_rps.append(run_wrk(wrk_bin, canary_url + "/invocations", body, args.duration_s)["rps"])
        stop(direct)
        direct = None

        httpx.post(  # the measured canary ends; the switching rollouts start from a finished one
            f"{canary_url}/admin/deployments/bench/rollback",
            headers={"authorization": f"Bearer {TOKEN}"},
            json={},
            timeout=30,
        ).raise_for_status()
        log: list[str] = []
        load_s = max(30, args.switches * 1)
        driver = threading.Thread(
            target=switch_driver,
            args=(canary_url, (blue, green), args.switches, time.monotonic() + load_s - 3, log),
        )
        driver.start()
        under_load = run_wrk(wrk_bin, canary_url + "/invocations", body, load_s)
        driver.join()
    finally:
        if direct is not None:
            stop(direct)
        stop(canary)
    shutil.rmtree(work, ignore_errors=True)

    direct_median, canary_median = statistics.median(direct_rps), statistics.median(canary_rps)
    results = {
        "overhead_fraction": round(1.0 - canary_median / direct_median, 4),
        "direct_rps": round(direct_median, 1),
        "canary_rps": round(canary_median, 1),
        "switches": len(log),
        "non_2xx": int(under_load["non_2xx"]),
        "connection_errors": int(under_load["connection_errors"]),
        "requests_during_switches": int(under_load["requests"]),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"runs (req/s): direct {direct_rps}, canary {canary_rps}")
    print(f"switches: {', '.join(log)}")
    print(f"\n{'measure':<28}{'value':>14}")
    for key, value in results.items():
        print(f"{key:<28}{value:>14}")
    checks = [
        ("overhead_fraction <= 0.05", results["overhead_fraction"] <= 0.05),
        ("switches >= 20", results["switches"] >= 20),
        ("non_2xx == 0", results["non_2xx"] == 0),
        ("connection_errors == 0", results["connection_errors"] == 0),
    ]
    print(f"\n{'target':<28}{'met':>6}")
    for name, met in checks:
        print(f"{name:<28}{'yes' if met else 'NO':>6}")


if __name__ == "__main__":
    main()
