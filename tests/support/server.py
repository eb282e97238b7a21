"""Start ``python -m lockgate.serving`` on 127.0.0.1 and wait until it is ready; stop it cleanly.

Every test that runs a real server process goes through :func:`start_server`, so a change to how
the server starts (a flag, the readiness path) is made once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "lockgate-test-admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
READY_PATH = "/v2/health/ready"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    """Poll ``check`` until it is true; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    pytest.fail(f"{what} did not happen within {timeout_s:g} s")


@dataclass
class ServerProcess:
    """A running server: its process, port and base URL. A context manager that stops it."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def is_ready(self) -> bool:
        try:
            return httpx.get(self.url + READY_PATH, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        """Send ``sig`` and wait for the exit code (kill after ``timeout_s``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_server(
    args: Sequence[str],
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    token: str | None = TOKEN,
    home: Path | None = None,
    cwd: Path | None = None,
    ready_timeout_s: float = 180,
    wait: bool = True,
    log_level: str | None = "warning",
    capture: bool = False,
    log_to: Path | None = None,
    unset: Sequence[str] = (),
) -> ServerProcess:
    """``python -m lockgate.serving ARGS --port PORT`` on 127.0.0.1, polled until ``/v2/health/ready``.

    ``token`` sets ``LOCKGATE_ADMIN_TOKEN`` (None leaves the environment's); ``home`` sets
    ``LOCKGATE_HOME``; ``env`` adds or overrides variables. With ``wait=False`` it returns at once
    (for tests of start-up itself); ``capture=True`` pipes stdout and stderr (read them with
    ``proc.communicate()`` after stopping); ``log_to`` appends its output (stdout and stderr) to
    that file; ``unset`` names variables removed from its environment. A server that
    exits or is not ready in time fails the test, with the end of its log when there is one.
    """
    port = port or free_port()
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    if token is not None:
        environment["LOCKGATE_ADMIN_TOKEN"] = token
    if home is not None:
        environment["LOCKGATE_HOME"] = str(home)
    environment.update(env or {})
    for name in unset:
        environment.pop(name, None)
    command = [sys.executable, "-m", "lockgate.serving", *args, "--port", str(port)]
    if log_level is not None and "--log-level" not in args:
        command += ["--log-level", log_level]
    pipe = subprocess.PIPE if capture else None
    if log_to is not None:
        log_to.parent.mkdir(parents=True, exist_ok=True)
        with log_to.open("ab") as log:
            proc = subprocess.Popen(command, cwd=cwd or ROOT, env=environment, stdout=pipe or log, stderr=log)
    else:
        proc = subprocess.Popen(command, cwd=cwd or ROOT, env=environment, stdout=pipe, stderr=pipe)
    server = ServerProcess(proc, port)

    def log_tail() -> str:
        return log_to.read_text(errors="replace")[-2000:] if log_to is not None and log_to.exists() else ""

    if not wait:
        return server
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if server.is_ready():
            return server
        if server.proc.poll() is not None:
            pytest.fail(f"the server exited with {server.proc.returncode} before it was ready: {log_tail()}")
        time.sleep(0.2)
    server.stop(signal.SIGKILL)
    pytest.fail(f"the server was not ready within {ready_timeout_s:g} s ({command}): {log_tail()}")
