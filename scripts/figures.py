"""Render every image the teaching decks and the docs show into docs/images/ (``make figures``).

Three kinds, all from this repository:

- diagrams: each ``docs/diagrams/NAME.dot`` rendered by Graphviz ``dot`` to ``NAME.svg``;
- the rollout state machine, ``rollout-states.svg``, written as dot by
  ``lockgate.figures.state_machine_dot`` from the controller's own transition table;
- figures made by lockgate commands with ``--plot FILE``: simulated rollouts, peeking, cost, and,
  after ``lockgate quickstart`` in a scratch folder, the runs compared and the optimization sweep.

Usage:  python scripts/figures.py [--out DIR] [--only diagrams|commands|tracked] [NAME ...]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIAGRAMS = ROOT / "docs" / "diagrams"
SPECS = ROOT / "examples" / "specs"
STATE_MACHINE = "rollout-states.svg"

# image -> the lockgate command that draws it (``--plot FILE`` added), run in a scratch folder
COMMANDS: dict[str, str] = {
    "canary-promoted.svg": "simulate --spec {specs}/canary.yaml --rate 1000 --requests 2000000",
    "canary-rollback.svg": "simulate --spec {specs}/canary.yaml --rate 1000 --requests 2000000 "
    "--candidate-error-rate 0.03",
    "blue-green-rollback.svg": "simulate --spec {specs}/blue_green.yaml --candidate-error-rate 0.03",
    "peeking.svg": "simulate-stats --effect 0 --looks 100 --runs 1000",
    "cost.svg": "plan --cost {specs}/canary.yaml --price 2 --traffic 200/s "
    "--throughput 50 --candidate-throughput 100",
}
# images drawn from the MLflow runs and versions `lockgate quickstart` makes on the bundled data
TRACKED = ("runs-compare.png", "optimize-tradeoffs.png")


def diagram_names() -> list[str]:
    return sorted(f"{path.stem}.svg" for path in DIAGRAMS.glob("*.dot"))


def images() -> dict[str, str]:
    """Every image the build makes, and its kind: diagram, generated, command or tracked."""
    made = dict.fromkeys(diagram_names(), "diagram")
    made[STATE_MACHINE] = "generated"
    made.update(dict.fromkeys(COMMANDS, "command"))
    made.update(dict.fromkeys(TRACKED, "tracked"))
    return made


def _dot(source: str, out: Path) -> None:
    dot = shutil.which("dot")
    if dot is None:
        sys.exit("Graphviz `dot` is missing: `bash scripts/install-graphviz` installs it (Debian: graphviz)")
    subprocess.run([dot, "-Tsvg", "-o", str(out)], input=source, text=True, check=True)


def _lockgate(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "MLFLOW_ENABLE_ASYNC_LOGGING": "false", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "lockgate.cli.main", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"`lockgate {' '.join(args)}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _tracked(out: Path, wanted: set[str]) -> None:
    """Run the quickstart in a scratch folder, then draw from its runs and its champion."""
    with tempfile.TemporaryDirectory(prefix="lockgate-figures-") as scratch:
        home = Path(scratch)
        _lockgate(["quickstart", "--fresh"], home)
        code = (
            "from lockgate.tracking import connect\n"
            "c = connect()\n"
            "ids = [e.experiment_id for e in c.client.search_experiments()]\n"
            "runs = c.client.search_runs(ids, order_by=['attributes.start_time ASC'])\n"
            "print(' '.join(r.info.run_id for r in runs if r.info.run_name in "
            "('logistic-regression', 'gradient-boosting')))\n"
        )
        ids = subprocess.run(
            [sys.executable, "-c", code], cwd=home, capture_output=True, text=True, check=True
        ).stdout.split()
        if "runs-compare.png" in wanted:
            _lockgate(["runs", "compare", *ids, "--plot", str(out / "runs-compare.png")], home)
        if "optimize-tradeoffs.png" in wanted:
            plot = str(out / "optimize-tradeoffs.png")
            _lockgate(["optimize", "breast-cancer-classifier@1", "--all", "--plot", plot], home)


def build(out: Path, names: set[str]) -> list[Path]:
    """Make the images in ``names`` under ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    for name in sorted(names & set(diagram_names())):
        _dot((DIAGRAMS / name).with_suffix(".dot").read_text(encoding="utf-8"), out / name)
    if STATE_MACHINE in names:
        from lockgate.figures import state_machine_dot

        _dot(state_machine_dot(), out / STATE_MACHINE)
    with tempfile.TemporaryDirectory(prefix="lockgate-figures-") as scratch:
        for name in sorted(names & set(COMMANDS)):
            args = shlex.split(COMMANDS[name].format(specs=shlex.quote(str(SPECS))))
            _lockgate([*args, "--plot", str(out / name)], Path(scratch))
    if names & set(TRACKED):
        _tracked(out, names & set(TRACKED))
    return [out / name for name in sorted(names)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--only", choices=["diagrams", "commands", "tracked"], action="append")
    parser.add_argument("names", nargs="*", help="only these images (default: all)")
    args = parser.parse_args()
    made = images()
    unknown = set(args.names) - set(made)
    if unknown:
        sys.exit(f"no such image: {', '.join(sorted(unknown))}; the build makes {', '.join(sorted(made))}")
    names = set(args.names or made)
    if args.only:
        kinds = {"diagrams": {"diagram", "generated"}, "commands": {"command"}, "tracked": {"tracked"}}
        names = {n for n in names if made[n] in set().union(*(kinds[o] for o in args.only))}
    for path in build(args.out.resolve(), names):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
