"""A team on one tracking server: many writers at once, a server restart, batched against plain logging.

Starts a real ``mlflow server`` with basic auth (``lockgate.tracking.server.TrackingServer``; its stores
on the Postgres at LOCKGATE_TEST_POSTGRES_URL when set, else SQLite), users alice and bob. Then:

1. 8 writer processes (4 as alice, 4 as bob) at once, each snapshotting a dataset, logging POINTS
   metric points in a ``lockgate.track`` run and registering a version of the same model;
   counts ``lost_points``, ``lost_versions`` and ``duplicate_versions`` (targets: 0).
2. One writer whose server is stopped for ``--outage-s`` seconds in the middle of its run and started
   again: ``outage_lost_points`` (target 0).
3. One writer logging POINTS points batched by lockgate, and a plain ``mlflow.log_metric`` loop on the
   same server: ``speedup`` in points per second (target >= 10).

Prints a table and writes ``benchmarks/results/team.json`` with the CPU it ran on.

    python benchmarks/bench_team.py [--points 2000] [--writers 8] [--outage-s 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from lockgate.optimize.cpu import cpu_info

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "team.json"
WRITER = ROOT / "tests" / "tracking" / "team_writer.py"
EXPERIMENT = "bench-team"


def start_writer(server: Any, user: str, folder: Path, args: list[str]) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **server.env(user),
        "LOCKGATE_HOME": str(folder / ".lockgate"),
        "LOCKGATE_EXPERIMENT": EXPERIMENT,
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        "PYTHONPATH": str(ROOT),
    }
    log = (folder / "writer.log").open("wb")
    return subprocess.Popen(
        [sys.executable, str(WRITER), *args], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def finish(process: subprocess.Popen[bytes], folder: Path, timeout_s: float = 900) -> dict[str, Any]:
    code = process.wait(timeout=timeout_s)
    if code != 0:
        tail = (folder / "writer.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"writer in {folder} exited {code}:\n{tail}")
    return dict(json.loads((folder / "result.json").read_text()))


def stored_steps(client: Any, run_id: str) -> set[int]:
    return {m.step for m in client.get_metric_history(run_id, "loss")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--outage-s", type=float, default=10.0)
    parser.add_argument(
        "--plain-points", type=int, default=300, help="plain loop points (slow: one request each)"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import list_versions
    from lockgate.tracking.server import TrackingServer

    postgres = os.environ.get("LOCKGATE_TEST_POSTGRES_URL") or None
    with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp_name:
        tmp = Path(tmp_name)
        server = TrackingServer(tmp / "server", users=("alice", "bob"), postgres_url=postgres)
        started = time.perf_counter()
        server.start()
        server_start_s = time.perf_counter() - started
        try:
            os.environ.update(server.env("alice"))
            os.environ["LOCKGATE_HOME"] = str(tmp / "parent" / ".lockgate")
            conn = connect()
            model = "team-model"
            server.grant("bob", "experiment", conn.experiment_id(EXPERIMENT), "EDIT")
            server.grant("bob", "experiment", conn.experiment_id("lockgate-datasets"), "EDIT")
            for user in ("alice", "bob"):  # whoever registers first creates (and owns) the model
                server.grant(user, "registered_model", model, "EDIT")

            # 1. many writers at once
            started = time.perf_counter()
            writers = [
                (
                    tmp / f"w{i}",
                    start_writer(
                        server,
                        ("alice", "bob")[i % 2],
                        tmp / f"w{i}",
                        ["lockgate", str(i), str(args.points), model, str(tmp / f"w{i}" / "result.json")],
                    ),
                )
                for i in range(args.writers)
            ]
            results = [finish(p, folder) for folder, p in writers]
            writers_s = time.perf_counter() - started
            client = connect().client
            lost_points = sum(args.points - len(stored_steps(client, r["run_id"])) for r in results)
            unfinished = sum(client.get_run(r["run_id"]).info.status != "FINISHED" for r in results)
            versions = list_versions(connect(), model)
            numbers = [v.version for v in versions]
            ours = {r["run_id"] for r in results}
            lost_versions = len(ours - {v.run_id for v in versions})
            duplicate_versions = len(numbers) - len(set(numbers)) + (len(versions) - len(ours))
            gaps = sorted(set(range(1, max(numbers, default=0) + 1)) - set(numbers))
            points_per_s = args.writers * args.points / max(r["logging_s"] for r in results)

            # 2. a server restart in the middle of a run
            folder = tmp / "outage"
            pause_s = 0.03  # a run that logs for a minute or more, so the outage falls inside it
            process = start_writer(
                server,
                "alice",
                folder,
                ["lockgate", "100", str(args.points), "-", str(folder / "result.json"), str(pause_s)],
            )
            outage: dict[str, float] = {}

            def restart() -> None:
                while not (folder / "logging.started").exists() and process.poll() is None:
                    time.sleep(0.1)
                time.sleep(3)  # into the run: some points sent, the rest to come
                stopped = time.perf_counter()
                server.stop()
                time.sleep(args.outage_s)
                server.start()
                outage["down_s"] = time.perf_counter() - stopped

            restarter = threading.Thread(target=restart)
            restarter.start()
            outage_code = process.wait(timeout=900)
            restarter.join()
            spills = list((folder / ".lockgate" / "spill").glob("*.jsonl"))
            outage_run = spills[0].stem if spills else finish(process, folder)["run_id"]
            outage_retries = None if spills else finish(process, folder)["retries"]
            synced = False
            if spills:  # the server took longer than the retry window: send the spill as a teammate would
                sync = subprocess.run(
                    [sys.executable, "-m", "lockgate.cli.main", "runs", "sync"],
                    cwd=folder,
                    env={**os.environ, **server.env("alice"), "LOCKGATE_HOME": str(folder / ".lockgate")},
                    capture_output=True,
                    text=True,
                    check=False,
                )
                synced = sync.returncode == 0
            client = connect().client
            outage_lost = args.points - len(stored_steps(client, outage_run))
            outage_status = client.get_run(outage_run).info.status

            # 3. batched against plain, same server, same user, same experiment
            batched = finish(
                start_writer(
                    server,
                    "alice",
                    tmp / "batched",
                    ["lockgate", "200", str(args.points), "-", str(tmp / "batched" / "result.json")],
                ),
                tmp / "batched",
            )
            plain = finish(
                start_writer(
                    server,
                    "alice",
                    tmp / "plain",
                    ["plain", "201", str(args.plain_points), "-", str(tmp / "plain" / "result.json")],
                ),
                tmp / "plain",
            )
            plain_lost = args.plain_points - len(stored_steps(connect().client, plain["run_id"]))
        finally:
            server.stop()

    batched_rate = args.points / batched["logging_s"]
    plain_rate = args.plain_points / plain["logging_s"]
    result = {
        "writers": args.writers,
        "users": 2,
        "points_per_writer": args.points,
        "lost_points": lost_points,
        "unfinished_runs": unfinished,
        "lost_versions": lost_versions,
        "duplicate_versions": duplicate_versions,
        "version_gaps": gaps,
        "versions": numbers,
        "writers_wall_s": round(writers_s, 1),
        "points_per_s": round(points_per_s, 1),
        "outage_s": args.outage_s,
        "outage_down_s": round(outage.get("down_s", 0.0), 1),
        "outage_lost_points": outage_lost,
        "outage_run_status": outage_status,
        "outage_writer_exit": outage_code,
        "outage_retries": outage_retries,
        "outage_spilled_then_synced": bool(spills) and synced,
        "batched_points_per_s": round(batched_rate, 1),
        "plain_points_per_s": round(plain_rate, 1),
        "plain_points": args.plain_points,
        "plain_lost_points": plain_lost,
        "speedup": round(batched_rate / plain_rate, 1),
        "server": "mlflow server --app-name basic-auth --serve-artifacts --workers 2, 127.0.0.1",
        "backend_store": "postgres" if postgres else "sqlite",
        "server_start_s": round(server_start_s, 1),
        "cpu": cpu_info().describe(),
        "python": platform.python_version(),
        "target": {
            "lost_points": 0,
            "lost_versions": 0,
            "duplicate_versions": 0,
            "outage_lost_points": 0,
            "speedup": 10,
        },
    }
    result["meets_target"] = (
        lost_points == 0
        and lost_versions == 0
        and duplicate_versions == 0
        and not gaps
        and unfinished == 0
        and outage_lost == 0
        and outage_status == "FINISHED"
        and result["speedup"] >= 10
    )
    rows = [
        ("writers x users", f"{args.writers} x 2, {args.points} points each"),
        ("lost points / unfinished runs", f"{lost_points} / {unfinished}"),
        ("versions (lost, duplicate, gaps)", f"{numbers} ({lost_versions}, {duplicate_versions}, {gaps})"),
        ("points/s, all writers", f"{points_per_s:,.0f}"),
        (
            f"outage {args.outage_s:.0f} s (down {outage.get('down_s', 0):.1f} s)",
            f"lost {outage_lost}, run {outage_status}"
            + (", spilled then sent by `lockgate runs sync`" if spills else f", {outage_retries} retries"),
        ),
        ("batched points/s", f"{batched_rate:,.0f}"),
        ("plain mlflow.log_metric points/s", f"{plain_rate:,.1f}"),
        ("speedup (target >= 10)", f"{result['speedup']}x"),
        ("cpu", result["cpu"]),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}; meets target: {result['meets_target']}")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
