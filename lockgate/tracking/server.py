"""A real ``mlflow server`` with basic authentication on 127.0.0.1, for tests, benchmarks and trying a
team set-up on one machine.

It is the shared tracking server a team runs (see ``docs/team.md``), started as a child process:
a backend store (a fresh database on a given Postgres, else a SQLite file), ``--serve-artifacts`` with
an artifact folder the clients never touch, and MLflow's ``basic-auth`` app with an admin and the
users asked for, created through the auth REST API. ``stop`` and ``start`` again keep the port and
the data, so an outage can be simulated.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lockgate.errors import LockgateError

__all__ = ["TrackingServer", "TrackingServerError"]

ADMIN_USERNAME = "admin"
_MIN_PASSWORD_CHARS = 12  # MLflow's auth app refuses shorter passwords


class TrackingServerError(LockgateError):
    """The local tracking server did not start or did not answer (its log's tail is in the message)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _group_is_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_port_free(port: int, timeout_s: float) -> None:
    """Return once nothing listens on ``port``. With SO_REUSEADDR, as uvicorn and gunicorn bind, the
    closed connections a stopped server leaves in TIME_WAIT (60 s on Linux) do not count."""
    deadline = time.monotonic() + timeout_s
    while True:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise TrackingServerError(f"port {port} is still taken after {timeout_s:.0f} s") from None
        time.sleep(0.2)


def _fresh_database(postgres_url: str, prefix: str) -> str:
    """Create an empty database on the Postgres at ``postgres_url``; return its URL."""
    import sqlalchemy

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return str(sqlalchemy.make_url(postgres_url).set(database=name).render_as_string(hide_password=False))


@dataclass
class TrackingServer:
    """``mlflow server --app-name basic-auth`` in ``folder``; ``start()`` returns once it answers.

    ``users`` are created with generated passwords (``passwords[name]``); the admin too. ``postgres_url``
    (a server the caller runs) holds the tracking and auth stores in fresh databases; without it they
    are SQLite files in ``folder``. ``auth_cache_ttl_s`` is MLflow's ``auth_cache_ttl_seconds``: 0 (its
    default) checks the password hash (scrypt, tens of ms of CPU, up to three times a request) on
    every request; above 0 each worker remembers a credential that passed for that long (a wrong
    one is checked every time).
    """

    folder: Path
    users: Sequence[str] = ("alice", "bob")
    postgres_url: str | None = None
    default_permission: str = "READ"
    workers: int = 2
    auth_cache_ttl_s: int = 0
    start_timeout_s: float = 90.0
    port: int = 0
    passwords: dict[str, str] = field(default_factory=dict)
    backend_uri: str = ""
    _process: subprocess.Popen[bytes] | None = None
    _is_set_up: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def artifact_folder(self) -> Path:
        return self.folder / "artifacts"

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def env(self, user: str | None) -> dict[str, str]:
        """The environment a teammate sets: the URI and, for ``user``, the credentials."""
        env = {"MLFLOW_TRACKING_URI": self.url}
        if user is not None:
            env["MLFLOW_TRACKING_USERNAME"] = user
            env["MLFLOW_TRACKING_PASSWORD"] = self.passwords[user]
        return env

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> TrackingServer:
        if self._process is not None:
            return self
        first = not self._is_set_up
        if first:
            self._set_up()
        else:
            _wait_port_free(self.port, self.start_timeout_s)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            self.backend_uri,
            "--serve-artifacts",
            "--artifacts-destination",
            self.artifact_folder.as_uri(),
            "--app-name",
            "basic-auth",
            "--workers",
            str(self.workers),
        ]
        env = {
            **os.environ,
            "MLFLOW_AUTH_CONFIG_PATH": str(self.folder / "basic_auth.ini"),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        }
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            env.pop(var, None)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.folder,
                start_new_session=True,  # stop() signals the whole group: the server and its workers
            )
        self._wait_healthy()
        if first:
            for user in self.users:
                self.admin_request(
                    "/api/2.0/mlflow/users/create", {"username": user, "password": self.passwords[user]}
                )
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server and its worker processes; return once none is left (the port is free)."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while _group_is_alive(process.pid):  # uvicorn's workers outlive their parent by a moment
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            time.sleep(0.1)

    def __enter__(self) -> TrackingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the auth REST API --------------------------------------------------------------------
    def admin_request(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call the server as the admin: POST ``body`` as JSON, or GET when there is none."""
        return self.request(path, ADMIN_USERNAME, body)

    def request(self, path: str, user: str | None, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - our own http URL
            self.url + path, data=data, method="POST" if data else "GET"
        )
        request.add_header("Content-Type", "application/json")
        if user is not None:
            token = base64.b64encode(f"{user}:{self.passwords[user]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own http URL
            text = response.read().decode()
        return json.loads(text) if text.strip() else {}

    def grant(self, user: str, resource_type: str, resource_id: str, permission: str) -> None:
        """Give ``user`` ``permission`` (READ, USE, EDIT, MANAGE) on an experiment id or a model name."""
        self.admin_request(
            "/api/3.0/mlflow/users/permissions/grant",
            {
                "username": user,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "permission": permission,
            },
        )

    # -- internals ----------------------------------------------------------------------------
    def _set_up(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.artifact_folder.mkdir(exist_ok=True)
        self.port = self.port or _free_port()
        for user in (ADMIN_USERNAME, *self.users):
            self.passwords.setdefault(user, f"{user}-{secrets.token_hex(8)}")
        if any(len(p) < _MIN_PASSWORD_CHARS for p in self.passwords.values()):
            raise ValueError(f"passwords need at least {_MIN_PASSWORD_CHARS} characters")
        if self.postgres_url:
            self.backend_uri = _fresh_database(self.postgres_url, "mlflow")
            auth_uri = _fresh_database(self.postgres_url, "mlflow_auth")
        else:
            self.backend_uri = f"sqlite:///{self.folder / 'mlflow.db'}"
            auth_uri = f"sqlite:///{self.folder / 'auth.db'}"
        (self.folder / "basic_auth.ini").write_text(
            "[mlflow]\n"
            f"default_permission = {self.default_permission}\n"
            f"database_uri = {auth_uri}\n"
            f"admin_username = {ADMIN_USERNAME}\n"
            f"admin_password = {self.passwords[ADMIN_USERNAME]}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            f"auth_cache_ttl_seconds = {self.auth_cache_ttl_s}\n"
        )
        self._is_set_up = True

    def _wait_healthy(self) -> None:
        process = self._process  # stop() from another thread may clear the attribute meanwhile
        if process is None:
            raise TrackingServerError("mlflow server was stopped while it started")
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._process = None
                raise TrackingServerError(f"mlflow server exited at start:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):  # noqa: S310
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise TrackingServerError(
            f"mlflow server did not answer within {self.start_timeout_s:.0f} s:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
