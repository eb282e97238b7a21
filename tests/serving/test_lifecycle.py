"""SIGTERM under load: every accepted request is answered, then the process exits 0."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: dict[str, Any]) -> Any:
    try:
        with httpx.Client(timeout=30) as client:
            response = client.post(url, json=body)
        return response.status_code, response.json()
    except httpx.TransportError as exc:
        return exc


def test_sigterm_drains_in_flight_requests_and_exits_0(logged_model: Any) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # A batch waits up to 3 s for company, so requests are certainly in flight at the signal.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lockgate.serving",
            str(logged_model.path),
            "--name",
            "cancer",
            "--port",
            str(port),
            "--max-wait-ms",
            "3000",
            "--max-batch-size",
            "64",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("the server did not become ready")
        bodies = [
            {
                "dataframe_split": {
                    "columns": logged_model.columns,
                    "data": [logged_model.features[i].tolist()],
                }
            }
            for i in range(40)
        ]
        with ThreadPoolExecutor(16) as pool:
            accepted = [pool.submit(_post, f"{url}/invocations", b) for b in bodies[:16]]
            # accepted = read by the server and waiting in the batcher's queue
            while time.monotonic() < deadline:
                metrics = httpx.get(f"{url}/metrics", timeout=5).text
                depth = re.search(r"lockgate_queue_depth\{[^}]*\} ([\d.]+)", metrics)
                if depth and float(depth.group(1)) >= 16:
                    break
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            late = [pool.submit(_post, f"{url}/invocations", b) for b in bodies[16:]]
            accepted_results = [f.result() for f in accepted]
            late_results = [f.result() for f in late]
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    for i, result in enumerate(accepted_results):
        assert result == (200, {"predictions": [int(logged_model.labels[i])]}), result
    for i, result in enumerate(late_results, start=16):
        # sent after the signal: answered correctly, or refused at the door; never half-served
        if not isinstance(result, Exception):
            assert result == (200, {"predictions": [int(logged_model.labels[i])]}), result
