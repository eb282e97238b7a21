"""CLI start-up: how long `lockgate --help` and `lockgate models list` take, against `python -c pass`.

Each run is a fresh process (cold: nothing of lockgate imported yet; the OS file cache is warm, as
it is for a person typing commands). The three commands take turns, --runs rounds (5 by default),
so that they share the machine's load; the median of each is reported, with the CPU and the load
average, because a busy 2-core machine doubles every number. `models list` reads the registry of a
quickstart's LOCKGATE_HOME (--home, made with `lockgate quickstart --fresh` when it has no
store yet). Targets (issue 20): help_s <= 0.5, models_list_s <= 1.5. Writes
benchmarks/results/cli.json. Usage:
    python benchmarks/bench_cli.py [--runs 5] [--home DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lockgate.optimize.cpu import cpu_info

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "cli.json"
TARGETS = {"help_s": 0.5, "models_list_s": 1.5}


def lockgate_command() -> list[str]:
    """The console script people type, when it is installed next to this Python; else -m."""
    script = Path(sys.executable).parent / "lockgate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lockgate.cli.main"]


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=env, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def ensure_quickstart(home: Path, env: dict[str, str]) -> None:
    if (home / "mlflow.db").exists():
        return
    print(f"no store in {home}: running lockgate quickstart --fresh (about a minute)")
    subprocess.run([*lockgate_command(), "quickstart", "--fresh", "--home", str(home)], env=env, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--home", type=Path, default=None, help="a quickstart's LOCKGATE_HOME")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="lockgate-bench-cli-"))
    env = {**os.environ, "LOCKGATE_HOME": str(home.resolve())}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    ensure_quickstart(home, env)
    lockgate = lockgate_command()
    commands = {
        "help_s": [*lockgate, "--help"],
        "models_list_s": [*lockgate, "models", "list"],
        "python_s": [sys.executable, "-c", "pass"],
    }
    for command in commands.values():
        timed(command, env)  # one warm-up each: the file cache and .pyc files, not the imports
    times: dict[str, list[float]] = {key: [] for key in commands}
    for _ in range(args.runs):
        for key, command in commands.items():
            times[key].append(timed(command, env))
    medians = {key: statistics.median(values) for key, values in times.items()}
    result = {
        **{key: round(value, 4) for key, value in medians.items()},
        "runs": args.runs,
        "all_s": {key: [round(v, 4) for v in values] for key, values in times.items()},
        "command": " ".join(Path(lockgate[0]).name if i == 0 else part for i, part in enumerate(lockgate)),
        "targets_s": TARGETS,
        "meets_targets": all(medians[key] <= limit for key, limit in TARGETS.items()),
        "cpu": cpu_info().describe(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }
    print(f"CPU: {result['cpu']} ({result['cpus']} cores), load average {result['load_average_1m']}")
    print(f"{'command':<24}{'median s':>10}{'target s':>10}   runs")
    names = {
        "help_s": "lockgate --help",
        "models_list_s": "lockgate models list",
        "python_s": "python -c pass",
    }
    for key, name in names.items():
        target = f"{TARGETS[key]:.1f}" if key in TARGETS else "-"
        runs = " ".join(f"{v:.2f}" for v in times[key])
        print(f"{name:<24}{medians[key]:>10.3f}{target:>10}   {runs}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0 if result["meets_targets"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
