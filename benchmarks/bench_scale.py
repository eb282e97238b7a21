"""Several gateways on one Postgres: merged counts, lease failover, weight propagation.

Two ``lockgate serve --store postgresql://...`` processes on 127.0.0.1 share a throwaway Postgres
(``scripts/postgres``, installed through apt when missing) and one canary:

- ``count_error``: the merged request count in the store minus the requests sent to both (target 0);
- ``propagation_s``: from a weight change made on one gateway until the other routes by it
  (target <= 1 s; median of several changes), read from the other gateway's answers;
- ``failover_s``: from SIGKILL of the lease holder until the other holds the lease (target <= the
  lease, 5 s).

- ``ray_overhead_fraction``: throughput lost by lockgate's Ray Serve backend (the ingress with the
  router and controller, calling the variant by handle) against plain Ray Serve serving the same
  model from one deployment (the same predictor, decoding the same JSON), on one local Ray (2 CPUs),
  both behind Serve's proxy, under the same wrk load; medians of ``--ray-runs`` interleaved runs
  (report; target <= 0.10). Null when Ray is not installed (``pip install 'lockgate[ray]'``).

Writes benchmarks/results/scale.json and prints a table. Usage:
    python benchmarks/bench_scale.py [--requests 2000] [--changes 5] [--ray-runs 3] [--no-ray]
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
from bench_serving import ensure_wrk, log_model, wrk

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


class PlainModel:
    """Plain Ray Serve: one deployment that decodes the request and calls the model itself."""

    def __init__(self, path: str) -> None:
        from lockgate.serving.server import load_variant
        from lockgate.serving.source import resolve_source

        # the model is the one this script just made: trusted on both sides
        self.predictor = load_variant(resolve_source(path, name="plain"), allow_unsafe=True).predictor

    async def __call__(self, request: Any) -> dict[str, Any]:
        import numpy as np

        rows = np.asarray((await request.json())["dataframe_split"]["data"], dtype=np.float64)
        outputs = self.predictor.predict(rows)
        return {"predictions": outputs[self.predictor.primary_output or next(iter(outputs))].tolist()}


def ray_overhead(
    model_path: Path, body: dict[str, Any], work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """lockgate's Ray ingress against plain Ray Serve: the same model, proxy, replica CPUs and load."""
    try:
        from lockgate.serving.ray_serve import RayOptions, ingress_app, ray_api, serve, start_ray
    except ImportError:
        print("Ray is not installed (pip install 'lockgate[ray]'): ray_overhead_fraction is null")
        return {"ray_overhead_fraction": None}
    from lockgate.serving.server import ServeConfig

    wrk_bin = ensure_wrk()
    options = RayOptions(num_cpus=2)
    start_ray(options, {**os.environ, "LOCKGATE_HOME": str(work / "ray")})
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        plain = serve.deployment(PlainModel, name="plain").options(
            ray_actor_options={"num_cpus": options.replica_cpus}, max_ongoing_requests=64
        )
        serve.run(plain.bind(str(model_path)), name="plain", route_prefix="/plain")
        config = ServeConfig(
            "",
            port=port,
            admin_token=TOKEN,
            follow_registry=False,
            allow_unsafe_load=True,
            store_url=f"sqlite:///{work / 'ray.db'}",
        )
        serve.run(ingress_app(config, options), name=options.prefix, route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        spec = {
            "name": "scale",
            "variants": {"stable": str(model_path), "next": str(model_path)},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 10**9}]},
        }
        httpx.put(f"{url}/admin/deployments/scale", json=spec, headers=AUTH, timeout=300).raise_for_status()
        # pending: every request is the baseline's, one replica like the plain deployment
        targets = {"plain": f"{url}/plain", "lockgate": f"{url}/invocations"}
        for target in targets.values():
            httpx.post(target, json=body, timeout=30).raise_for_status()
            wrk(wrk_bin, target, body, args.connections, 2)  # warm-up
        runs: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.ray_runs):  # interleaved: a noisy moment hits both
            for name, target in targets.items():
                runs[name].append(wrk(wrk_bin, target, body, args.connections, args.duration_s)[0])
    finally:
        serve.shutdown()
        ray_api.shutdown()
    plain_rps, lockgate_rps = statistics.median(runs["plain"]), statistics.median(runs["lockgate"])
    return {
        "ray_overhead_fraction": round(1.0 - lockgate_rps / plain_rps, 3),
        "ray_plain_rps": round(plain_rps, 1),
        "ray_lockgate_rps": round(lockgate_rps, 1),
        "ray_runs_rps": {name: [round(r, 1) for r in values] for name, values in runs.items()},
        "ray_connections": args.connections,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="requests per gateway")
    parser.add_argument("--changes", type=int, default=5, help="weight changes to time")
    parser.add_argument("--ray-runs", type=int, default=3, help="wrk runs per Ray target (median)")
    parser.add_argument("--duration-s", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--no-ray", action="store_true", help="skip ray_overhead_fraction")
    parser.add_argument("--only-ray", action="store_true", help="measure ray_overhead_fraction only")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.only_ray:  # the other keys stay as the last full run wrote them
        results = json.loads(OUT.read_text()) if OUT.exists() else {}
        results.update(measure_ray(args))
        report(results)
        return
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
    if not args.no_ray:
        results.update(measure_ray(args))  # after the gateways stopped: the cores are Ray's
    report(results)


def measure_ray(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="lockgate-bench-ray-"))
    try:
        model_path, body = log_model(work)
        return ray_overhead(model_path, body, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict[str, Any]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'measure':<26}{'value':>12}")
    for name, value in results.items():
        print(f"{name:<26}{value!s:>12}")
    checks = []
    if results.get("count_error") is not None:
        checks += [
            ("count_error == 0", results["count_error"] == 0),
            (f"failover_s <= {LEASE_S:g}", results["failover_s"] <= LEASE_S),
            ("propagation_s <= 1", results["propagation_s"] <= 1.0),
        ]
    if results.get("ray_overhead_fraction") is not None:
        checks.append(("ray_overhead_fraction <= 0.10", results["ray_overhead_fraction"] <= 0.10))
    print(f"\n{'target':<26}{'met':>6}")
    for name, met in checks:
        print(f"{name:<26}{'yes' if met else 'NO':>6}")


if __name__ == "__main__":
    main()
