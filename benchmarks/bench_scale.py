"""Several gateways on one Postgres: merged counts, lease failover, weight propagation.

Two ``lockgate serve --store postgresql://...`` processes on 127.0.0.1 share a throwaway Postgres
(``scripts/postgres``, installed through apt when missing) and one canary:

- ``count_error``: the merged request count in the store minus the requests sent to both (target 0);
- ``propagation_s``: from a weight change made on one gateway until the other routes by it
  (target <= 1 s; median of several changes), read from the other gateway's answers;
- ``failover_s``: from SIGKILL of the lease holder until the other holds the lease (target <= the
  lease, 5 s).

``ray_overhead_fraction`` (lockgate's ingress on Ray Serve against plain Ray Serve) needs the Ray
backend, which is not built yet: it is written as null.

Writes benchmarks/results/scale.json and prints a table. Usage:
    python benchmarks/bench_scale.py [--requests 2000] [--changes 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from bench_serving import log_model

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "scale.json"
TOKEN = "bench-scale-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
LEASE_S = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway(store: str, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LOCKGATE_ADMIN_TOKEN": TOKEN, "LOCKGATE_HOME": str(home)}
    args = ["--store", store, "--port", str(port), "--log-level", "warning", "--no-follow-registry"]
    proc = subprocess.Popen([sys.executable, "-m", "lockgate.serving", *args], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("a gateway did not become ready")


def holder_pid(engine: Any) -> int | None:
    with engine.connect() as connection:
        value = connection.exec_driver_sql(
            "SELECT lease_holder FROM deployments WHERE name = 'scale'"
        ).scalar()
    return int(str(value).split(":")[1]) if value else None


def send(url: str, body: dict[str, Any], n: int, key_prefix: str) -> int:
    ok = 0
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            response = client.post(
                f"{url}/invocations", json=body, headers={"x-routing-key": f"{key_prefix}{i}"}
            )
            ok += response.status_code == 200
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="requests per gateway")
    parser.add_argument("--changes", type=int, default=5, help="weight changes to time")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from lockgate.rollout.sqlstore import SqlStore

    work = Path(tempfile.mkdtemp(prefix="lockgate-bench-scale-"))
    exports = subprocess.run(
        ["bash", str(ROOT / "scripts" / "postgres"), "start"], capture_output=True, text=True, check=True
    ).stdout
    env = dict(line.removeprefix("export ").split("=", 1) for line in exports.splitlines() if "=" in line)
    store_url, pg_dir = env["LOCKGATE_TEST_POSTGRES_URL"], env["LOCKGATE_PG_DIR"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        model_path, body = log_model(work)
        store = SqlStore(store_url)
        (proc_a, url_a), (proc_b, url_b) = gateway(store_url, work / "a"), gateway(store_url, work / "b")
        procs = [proc_a, proc_b]
        key = "u-probe"
        spec = {
            "name": "scale",
            "variants": {"stable": str(model_path), "next": str(model_path)},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 10**9}]},
            "analysis": {"policy": "threshold", "min_requests": 10**9},
        }
        # the same folder twice: two variants of one model (reused once each, so two copies load)
        httpx.put(f"{url_a}/admin/deployments/scale", json=spec, headers=AUTH, timeout=120).raise_for_status()
        deadline = time.monotonic() + 30
        while httpx.get(f"{url_b}/admin/deployments/scale", headers=AUTH).status_code != 200:
            assert time.monotonic() < deadline, "the second gateway never served the deployment"
            time.sleep(0.1)
        httpx.post(f"{url_a}/admin/deployments/scale/start", json={}, headers=AUTH).raise_for_status()

        # 1. merged counts
        with ThreadPoolExecutor(2) as pool:
            sent = sum(pool.map(lambda u: send(u, body, args.requests, u[-5:]), [url_a, url_b]))
        time.sleep(1.0)  # a few ticks: every gateway's counters reach the store
        merged = sum(s.requests for s in store.load_snapshot("scale").values())
        count_error = merged - sent

        # 2. propagation: pause/resume don't move weights; rollback + redeploy + start do
        delays = []
        for change in range(args.changes):
            httpx.post(f"{url_a}/admin/deployments/scale/rollback", json={}, headers=AUTH).raise_for_status()
            changed_at = time.monotonic()
            while True:  # gateway b routes everything to the baseline once it sees the rollback
                answers = [
                    httpx.post(
                        f"{url_b}/invocations", json=body, headers={"x-routing-key": f"{key}{change}-{i}"}
                    ).headers["x-model-name"]
                    for i in range(20)
                ]
                if set(answers) == {"stable"}:
                    break
                if time.monotonic() - changed_at > 10:
                    raise RuntimeError("the weight change never reached the second gateway")
            delays.append(time.monotonic() - changed_at)
            httpx.put(
                f"{url_a}/admin/deployments/scale", json=spec, headers=AUTH, timeout=60
            ).raise_for_status()
            httpx.post(f"{url_a}/admin/deployments/scale/start", json={}, headers=AUTH).raise_for_status()
        propagation_s = statistics.median(delays)

        # 3. failover
        deadline = time.monotonic() + 10
        while holder_pid(store._engine) not in (proc_a.pid, proc_b.pid):
            assert time.monotonic() < deadline, "no gateway holds the lease"
            time.sleep(0.05)
        dead = holder_pid(store._engine)
        victim = proc_a if dead == proc_a.pid else proc_b
        survivor = proc_b if victim is proc_a else proc_a
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        killed_at = time.monotonic()
        while holder_pid(store._engine) != survivor.pid:
            if time.monotonic() - killed_at > 30:
                raise RuntimeError("the lease was never taken over")
            time.sleep(0.01)
        failover_s = time.monotonic() - killed_at
        store.close()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        subprocess.run(["bash", str(ROOT / "scripts" / "postgres"), "stop", pg_dir], check=False)
        shutil.rmtree(work, ignore_errors=True)

    results = {
        "count_error": int(count_error),
        "failover_s": round(failover_s, 3),
        "propagation_s": round(propagation_s, 3),
        "ray_overhead_fraction": None,
        "requests_sent": int(sent),
        "lease_s": LEASE_S,
        "propagation_runs_s": [round(d, 3) for d in delays],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'measure':<26}{'value':>12}")
    for name, value in results.items():
        print(f"{name:<26}{value!s:>12}")
    checks = [
        ("count_error == 0", count_error == 0),
        (f"failover_s <= {LEASE_S:g}", failover_s <= LEASE_S),
        ("propagation_s <= 1", propagation_s <= 1.0),
    ]
    print(f"\n{'target':<26}{'met':>6}")
    for name, met in checks:
        print(f"{name:<26}{'yes' if met else 'NO':>6}")


if __name__ == "__main__":
    main()
