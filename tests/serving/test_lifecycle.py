"""SIGTERM under load: every accepted request is answered, then the process exits 0."""

from __future__ import annotations

import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support import start_server

pytestmark = pytest.mark.integration


def _post(url: str, body: dict[str, Any]) -> Any:
    try:
        with httpx.Client(timeout=30) as client:
            response = client.post(url, json=body)
        return response.status_code, response.json()
    except httpx.TransportError as exc:
        return exc


def test_sigterm_drains_in_flight_requests_and_exits_0(logged_model: Any) -> None:
    # A batch waits up to 3 s for company, so requests are certainly in flight at the signal.
    server = start_server(
        [str(logged_model.path), "--name", "cancer", "--max-wait-ms", "3000", "--max-batch-size", "64"],
        token=None,
    )
    proc, url = server.proc, server.url
    deadline = time.monotonic() + 120
    try:
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
