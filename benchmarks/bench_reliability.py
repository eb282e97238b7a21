"""Reliability and security figures (issue 12): a soak under mixed load, and the attack, fuzz and
fault suites' own counts.

- soak: one `lockgate serve` process with a deployment of two real scikit-learn models, for
  --soak-seconds (600 by default) under mixed load from four client threads: valid requests (V2 and
  /invocations), invalid ones (each must be a 4xx), feedback for answered requests, and an admin
  switch of the served model every 30 s. Reports `requests`, `non_2xx_on_valid` (target 0), and the
  server's growth in resident memory (`rss_growth_mb`, target <= 50) and open file descriptors
  (`fd_growth`, target <= 10) from the end of a warm-up (a tenth of the soak, 10-60 s) to the end.
- attacks, fuzz, faults: runs `pytest tests/reliability` (unless --skip-suite) and counts its cases:
  attacks (test_attacks.py, test_sources.py: each failed case is a breach), schemathesis'
  requests and their 5xx (test_openapi_fuzz.py), fault cases (test_faults.py) and acknowledged
  requests, outcomes or commands lost across them.

Writes benchmarks/results/reliability.json. Usage:
    python benchmarks/bench_reliability.py [--soak-seconds 600] [--skip-suite]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "reliability.json"
TOKEN = "bench-reliability-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
SWITCH_EVERY_S = 30.0


def save_models(work: Path) -> tuple[dict[str, Path], list[str], list[list[float]]]:
    """Two real models (skops, so they load without --allow-unsafe-load): (folders, columns, rows)."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    data = load_breast_cancer()
    frame = pd.DataFrame(data.data, columns=list(data.feature_names))
    folders = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, c in (("one", 1.0), ("two", 0.05)):
            model = LogisticRegression(C=c, max_iter=3000).fit(frame, data.target)
            folders[name] = work / name
            mlflow.sklearn.save_model(
                model, str(folders[name]), signature=infer_signature(frame, model.predict(frame))
            )
    return folders, list(frame.columns), frame.to_numpy()[:64].tolist()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class _Load:
    """Mixed load from one thread: valid, invalid and feedback requests, counted by kind."""

    def __init__(self, url: str, columns: list[str], rows: list[list[float]], seed: int) -> None:
        self.url, self.columns, self.rows, self.seed = url, columns, rows, seed
        self.counts: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        import random

        rng = random.Random(self.seed)
        invalid = [
            ("/invocations", b"{not json"),
            ("/invocations", b'{"dataframe_split": {"columns": ["nope"], "data": [[1]]}}'),
            (
                "/v2/models/soak/infer",
                b'{"inputs": [{"name": "x", "shape": [99999999999, 30], "datatype": "FP64", "data": [0]}]}',
            ),
            ("/v2/models/missing/infer", b"{}"),
            ("/v2/models/soak/feedback", b'{"request_id": "never-seen", "value": 1}'),
        ]
        with httpx.Client(timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                row = self.rows[i % len(self.rows)]
                kind = rng.random()
                try:
                    if kind < 0.8:
                        if i % 2:
                            body: dict[str, Any] = {
                                "dataframe_split": {"columns": self.columns, "data": [row]}
                            }
                            response = client.post(f"{self.url}/invocations", json=body)
                        else:
                            tensor = {"name": "x", "shape": [1, 30], "datatype": "FP64", "data": row}
                            response = client.post(
                                f"{self.url}/v2/models/soak/infer", json={"inputs": [tensor]}
                            )
                        self.counts["valid"] += 1
                        if not 200 <= response.status_code < 300:
                            self.counts["non_2xx_on_valid"] += 1
                        elif rng.random() < 0.3:
                            fed = client.post(
                                f"{self.url}/v2/models/soak/feedback",
                                json={"request_id": response.headers["x-request-id"], "value": rng.random()},
                            )
                            self.counts["feedback"] += 1
                            if fed.status_code != 200:
                                self.counts["non_2xx_on_valid"] += 1
                    else:
                        path, raw = invalid[i % len(invalid)]
                        response = client.post(
                            f"{self.url}{path}", content=raw, headers={"content-type": "application/json"}
                        )
                        self.counts["invalid"] += 1
                        if not 400 <= response.status_code < 500:
                            self.counts["invalid_not_4xx"] += 1
                except httpx.TransportError:
                    self.counts["transport_errors"] += 1
                    self.counts["non_2xx_on_valid"] += 1


def soak(seconds: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="lockgate-soak-"))
    folders, columns, rows = save_models(work)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LOCKGATE_ADMIN_TOKEN": TOKEN,
        "LOCKGATE_HOME": str(work / "home"),
        "PYTHONPATH": str(ROOT),
    }
    with (work / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lockgate.serving", "--store", f"sqlite:///{work / 'rollouts.db'}",
             "--port", str(port), "--log-level", "warning"],
            env=env, cwd=ROOT, stderr=log,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        switches = 0

        def deploy(served: str) -> None:
            other = "two" if served == "one" else "one"
            spec = {
                "name": "soak",
                "variants": {"stable": str(folders[served]), "next": str(folders[other])},
                "baseline": "stable",
                "candidate": "next",
                "strategy": {"type": "direct"},
            }
            response = httpx.put(f"{url}/admin/deployments/soak", json=spec, headers=AUTH, timeout=120)
            response.raise_for_status()

        deploy("one")
        loads = [_Load(url, columns, rows, seed) for seed in range(4)]
        threads = [threading.Thread(target=load.run, daemon=True) for load in loads]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        warm_up_s = min(60.0, max(10.0, seconds / 10))
        time.sleep(warm_up_s)
        rss_start, fds_start = _rss_mb(proc.pid), _fds(proc.pid)
        next_switch = started + SWITCH_EVERY_S
        while time.monotonic() - started < seconds:
            time.sleep(0.5)
            if time.monotonic() >= next_switch:
                switches += 1
                deploy("two" if switches % 2 else "one")
                status = httpx.get(f"{url}/admin/deployments/soak", headers=AUTH, timeout=30)
                status.raise_for_status()
                next_switch += SWITCH_EVERY_S
        for load in loads:
            load.stop.set()
        for thread in threads:
            thread.join(60)
        rss_end, fds_end = _rss_mb(proc.pid), _fds(proc.pid)
        alive = httpx.get(f"{url}/v2/health/live", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(60)
    total = sum((load.counts for load in loads), Counter())
    print(
        f"soak: {seconds:.0f} s, {switches} admin switches, {dict(total)}, "
        f"rss {rss_start:.1f} -> {rss_end:.1f} MB, fds {fds_start} -> {fds_end}, "
        f"alive afterwards: {alive}, exit {proc.returncode}"
    )
    return {
        "requests": total["valid"] + total["feedback"] + total["invalid"] + switches,
        "non_2xx_on_valid": total["non_2xx_on_valid"] + (0 if alive else 1),
        "rss_growth_mb": round(rss_end - rss_start, 1),
        "fd_growth": fds_end - fds_start,
    }


def suite() -> dict[str, Any]:
    """Run tests/reliability; count its cases per part from JUnit XML and the tests' own report."""
    work = Path(tempfile.mkdtemp(prefix="lockgate-reliability-"))
    report, junit = work / "report.json", work / "junit.xml"
    env = {**os.environ, "LOCKGATE_RELIABILITY_REPORT": str(report)}
    command = [str(ROOT / "scripts" / "test"), "tests/reliability", "-q", f"--junitxml={junit}"]
    subprocess.run(command, env=env, cwd=ROOT, check=False)
    parts: dict[str, Counter[str]] = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        part = case.get("classname", "").rsplit(".", 1)[-1]
        outcome = "failed" if case.find("failure") is not None or case.find("error") is not None else "passed"
        if case.find("skipped") is not None:
            outcome = "skipped"
        parts.setdefault(part, Counter())[outcome] += 1
    figures = json.loads(report.read_text()) if report.exists() else {}

    def count(names: tuple[str, ...], outcome: str | None = None) -> int:
        return sum(sum(c.values()) if outcome is None else c[outcome] for n, c in parts.items() if n in names)

    attacks = ("test_attacks", "test_sources")
    print(f"suite: { ({n: dict(c) for n, c in parts.items()}) }, figures {figures}")
    return {
        "attacks": {"cases": count(attacks), "breaches": count(attacks, "failed")},
        "fuzz_cases": int(figures.get("fuzz_cases", 0)),
        "fuzz_5xx": int(figures.get("fuzz_5xx", 0)) + count(("test_openapi_fuzz",), "failed"),
        "faults": {
            "cases": count(("test_faults",)),
            "lost_acknowledged": int(figures.get("lost_acknowledged", 0)) + count(("test_faults",), "failed"),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--soak-seconds", type=float, default=600.0, help="soak length (600 = the issue's 10 min)"
    )
    parser.add_argument("--skip-suite", action="store_true", help="soak only; keep the last suite figures")
    args = parser.parse_args()
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    parts = (
        {k: previous[k] for k in ("attacks", "fuzz_cases", "fuzz_5xx", "faults") if k in previous}
        if args.skip_suite
        else suite()
    )
    result = {"soak": soak(args.soak_seconds), **parts}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    soak_figures = result["soak"]
    rows = [
        ("soak requests", soak_figures["requests"], ""),
        ("soak non-2xx on valid", soak_figures["non_2xx_on_valid"], "0"),
        ("soak RSS growth (MB)", soak_figures["rss_growth_mb"], "<= 50"),
        ("soak fd growth", soak_figures["fd_growth"], "<= 10"),
    ]
    if "attacks" in result:
        rows += [
            ("attack cases", result["attacks"]["cases"], ""),
            ("attack breaches", result["attacks"]["breaches"], "0"),
            ("fuzz cases", result["fuzz_cases"], ""),
            ("fuzz 5xx", result["fuzz_5xx"], "0"),
            ("fault cases", result["faults"]["cases"], ""),
            ("lost acknowledged", result["faults"]["lost_acknowledged"], "0"),
        ]
    print(f"\n{'figure':<26}{'value':>10}  target")
    for name, value, target in rows:
        print(f"{name:<26}{value!s:>10}  {target}")
    print(f"\nwrote {OUT.relative_to(ROOT)} (soak {args.soak_seconds:.0f} s)")


if __name__ == "__main__":
    main()
