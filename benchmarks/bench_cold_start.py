"""Cold start: from `lockgate serve` being launched to its first 200 answer to a prediction.

This is the number a serverless platform (Lambda, Knative or Cloud Run scaled to zero) adds to the
first request after an idle spell, and the number the cost model's `--replica-start` means: the
time before a replica that had to start again can answer (a rollback under `direct` or `rolling`).

A scikit-learn pipeline (scaler + logistic regression on the breast-cancer data) is saved as a local
MLflow model; each run starts a fresh `lockgate serve` process on it and posts one row to
/invocations every 10 ms until one is answered 200. Reports the median of --runs runs (3 by default)
of: first 200 (what a client waits for), readiness (/v2/health/ready 200, what a probe sees).
Writes benchmarks/results/cold_start.json. Usage:
    python benchmarks/bench_cold_start.py [--runs 3] [--model PATH_OR_URI]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOCKGATE = Path(sys.executable).parent / "lockgate"
OUT = ROOT / "benchmarks" / "results" / "cold_start.json"


def save_model(work: Path) -> tuple[Path, dict[str, object]]:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    frame = pd.DataFrame(data.data, columns=list(data.feature_names))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(frame, data.target)
    path = work / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            model,
            str(path),
            signature=infer_signature(frame, model.predict(frame)),
            pip_requirements=["scikit-learn"],
        )
    body = {"dataframe_split": {"columns": list(frame.columns), "data": [frame.iloc[0].tolist()]}}
    return path, body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_cold_start(
    model: str, body: dict[str, object], home: Path, timeout_s: float = 120
) -> dict[str, float]:
    """Seconds from launching the process to its first 200 on /invocations and on readiness."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LOCKGATE_HOME": str(home)}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(LOCKGATE), "serve", model, "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    first_200_s = ready_s = None
    try:
        with httpx.Client(timeout=2) as client:
            while time.perf_counter() - started < timeout_s:
                if proc.poll() is not None:
                    raise RuntimeError(f"lockgate serve exited with {proc.returncode}")
                try:
                    if first_200_s is None:
                        answer = client.post(f"{url}/invocations", json=body)
                        if answer.status_code == 200:
                            first_200_s = time.perf_counter() - started
                    if ready_s is None and client.get(f"{url}/v2/health/ready").status_code == 200:
                        ready_s = time.perf_counter() - started
                except httpx.HTTPError:
                    pass
                if first_200_s is not None and ready_s is not None:
                    break
                time.sleep(0.01)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    if first_200_s is None or ready_s is None:
        raise RuntimeError(f"no 200 answer within {timeout_s} s")
    return {"first_200_s": first_200_s, "ready_s": ready_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", help="serve this instead (a path or models:/ URI in LOCKGATE_HOME)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lockgate-cold-") as scratch:
        work = Path(scratch)
        path, body = save_model(work)
        model = args.model or str(path)
        home = Path(os.environ.get("LOCKGATE_HOME", work / "home")) if args.model else work / "home"
        one_cold_start(model, body, home)  # the first launch also fills the OS file cache: not counted
        runs = [one_cold_start(model, body, home) for _ in range(args.runs)]
    first = statistics.median(r["first_200_s"] for r in runs)
    ready = statistics.median(r["ready_s"] for r in runs)
    result = {
        "model": "scikit-learn scaler + logistic regression (MLflow folder)" if not args.model else model,
        "runs": runs,
        "median_first_200_s": round(first, 2),
        "median_ready_s": round(ready, 2),
        "cpus": os.cpu_count(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print("run  first 200 (s)  ready (s)")
    for i, r in enumerate(runs, 1):
        print(f"{i:>3}  {r['first_200_s']:>13.2f}  {r['ready_s']:>9.2f}")
    print(f"median first 200: {first:.2f} s, ready: {ready:.2f} s (written to {OUT.relative_to(ROOT)})")
    print(f"use it in the cost model: lockgate plan --cost SPEC --replica-start {first:.1f}s")


if __name__ == "__main__":
    main()
