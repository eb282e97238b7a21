"""One teammate's training process, for the many-writers test and ``benchmarks/bench_team.py``.

    python team_writer.py lockgate INDEX POINTS MODEL RESULT.json [SECONDS_PER_POINT]
    python team_writer.py plain INDEX POINTS - RESULT.json

``lockgate``: snapshot a version of the dataset all writers share (its own contents, at the same
time as the others, so numbering is raced) and a dataset of its own, train a tiny model in a
``lockgate.track`` run that logs POINTS metric points (buffered), register it as a new version of
MODEL. ``plain``: log POINTS points with one ``mlflow.log_metric`` call each, MLflow's own way, for
comparison. The server, the user and the experiment come from the environment, as for any teammate.
The result file says what it did.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def run_lockgate(index: int, points: int, model_name: str, pause_s: float) -> dict[str, object]:
    from sklearn.linear_model import LogisticRegression

    import lockgate
    from lockgate.tracking.connection import connect
    from lockgate.tracking.datasets import snapshot
    from lockgate.tracking.registry import register

    conn = connect()
    shared = None
    if model_name != "-":
        part = Path(f"shared-{index}.csv")
        part.write_text(f"x,writer\n1,{index}\n")
        shared = snapshot(conn, part, f"{model_name}-shared")
    data = Path(f"data-{index}.csv")
    data.write_text("x,y\n" + "".join(f"{i},{(i + index) % 2}\n" for i in range(20)))
    dataset = snapshot(conn, data, f"{model_name if model_name != '-' else 'solo'}-data-{index}")
    started = time.perf_counter()
    with lockgate.track(run_name=f"writer-{index}", capture_env=False, datasets=[dataset.ref]) as run:
        Path("logging.started").touch()  # the benchmark's outage waits for this
        for step in range(points):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
            if pause_s:
                time.sleep(pause_s)
        run.flush()
        logging_s = time.perf_counter() - started
        model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        run.log_model(model)
    version = register(conn, run.run_id, model_name) if model_name != "-" else None
    return {
        "run_id": run.run_id,
        "version": version.version if version else None,
        "dataset": dataset.ref,
        "dataset_digest": dataset.digest,
        "shared_version": shared.version if shared else None,
        "shared_digest": shared.digest if shared else None,
        "points": points,
        "logging_s": logging_s,
        "retries": run.retries,
        "spilled": str(run.spill.path) if run.spill else None,
    }


def run_plain(index: int, points: int) -> dict[str, object]:
    import mlflow

    from lockgate.tracking.connection import connect

    conn = connect()
    experiment_id = conn.experiment_id()
    started = time.perf_counter()
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"plain-{index}") as run:
        for step in range(points):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    return {"run_id": run.info.run_id, "points": points, "logging_s": time.perf_counter() - started}


def main(argv: list[str]) -> None:
    mode, index, points, model_name, result = argv[:5]
    pause_s = float(argv[5]) if len(argv) > 5 else 0.0
    if mode == "lockgate":
        outcome = run_lockgate(int(index), int(points), model_name, pause_s)
    else:
        outcome = run_plain(int(index), int(points))
    Path(result).write_text(json.dumps(outcome))


if __name__ == "__main__":
    main(sys.argv[1:])
