"""The one place lockgate connects to MLflow: tracking URI, registry URI, experiments.

lockgate never writes MLflow's tables itself; everything goes through ``MlflowClient``. This module
points MLflow at the configured stores, checks that they answer (so an unreachable server fails in
seconds with its URI named, not after minutes of retries), and creates lockgate's experiments with
their artifacts under ``LOCKGATE_HOME`` when the default store is in use.

A tracking server over HTTP is asked once per connection whether it is an MLflow server and accepts
the credentials in force (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``, or
``MLFLOW_TRACKING_TOKEN``), so a wrong password, a missing one or a wrong path is one clear
:class:`UserError`; :func:`server_errors` does the same for a refused call (403) on a named resource.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from lockgate.errors import Forbidden, LockgateError, StoreUnreachable, Unauthorized, UserError
from lockgate.settings import Settings, current_settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "DATASETS_EXPERIMENT",
    "PURPOSE_TAG",
    "Connection",
    "ServerAnswer",
    "ask_server",
    "connect",
    "probe_uri",
    "server_error",
    "server_errors",
    "tracking_user",
]

DATASETS_EXPERIMENT = "lockgate-datasets"
# An experiment tag naming what its runs are when they are not training runs (``optimize``): such
# experiments stay out of `lockgate runs list` unless it is asked for one by name.
PURPOSE_TAG = "lockgate.purpose"
_PROBE_TIMEOUT_S = 3.0
_ANSWER_TIMEOUT_S = 30.0  # a server that accepted the connection may be slow to answer (just started)


@dataclass(frozen=True)
class Connection:
    """An MLflow client bound to lockgate's settings."""

    settings: Settings
    client: MlflowClient

    def experiment_id(self, name: str | None = None) -> str:
        """The id of experiment ``name`` (default: the configured one), created on first use."""
        return _ensure_experiment(self, name or self.settings.experiment)


def probe_uri(uri: str, timeout_s: float = _PROBE_TIMEOUT_S) -> None:
    """Raise :class:`StoreUnreachable` unless the store at ``uri`` can be reached.

    HTTP servers must accept a TCP connection; SQLite needs a folder it can create its file in;
    other database URLs must accept a connection.
    """
    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+")[0]
    hint = "start the server or fix MLFLOW_TRACKING_URI (run `lockgate info` to see what is in force)"
    if scheme in ("http", "https"):
        port = parsed.port or (443 if scheme == "https" else 80)
        try:
            with socket.create_connection((parsed.hostname or "127.0.0.1", port), timeout_s):
                return
        except OSError as exc:
            raise StoreUnreachable(
                f"the MLflow tracking server at '{uri}' cannot be reached ({exc.strerror or exc})",
                hint=hint,
            ) from exc
    if scheme == "sqlite":
        path = uri.removeprefix("sqlite:///")
        if path and path != ":memory:":
            folder = Path(path).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnreachable(
                    f"the MLflow store '{uri}' cannot be created: {exc.strerror or exc}",
                    hint="set LOCKGATE_HOME to a folder you can write to",
                ) from exc
        return
    if scheme in ("postgresql", "mysql", "mssql"):
        import sqlalchemy

        try:
            engine = sqlalchemy.create_engine(uri, pool_pre_ping=True)
            with engine.connect():
                pass
        except Exception as exc:
            raise StoreUnreachable(
                f"the MLflow database at '{_redact(uri)}' cannot be reached: {exc.__class__.__name__}",
                hint=hint,
            ) from exc
        return
    if scheme in ("", "file"):
        return
    if scheme in ("databricks", "uc"):
        return
    raise UserError(
        f"tracking URI '{uri}' has a scheme lockgate does not know ('{scheme}')",
        hint="use http(s)://, sqlite:///, postgresql:// or a local folder",
    )


CREDENTIALS_HINT = (
    "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the "
    "environment; `lockgate info` shows what is in force"
)
PERMISSION_HINT = (
    "ask the resource's owner or an admin of the server for EDIT on it (see docs/team.md, "
    "'Users and permissions')"
)


def tracking_user() -> str | None:
    """The user MLflow's client sends (environment, else ``~/.mlflow/credentials``), or None."""
    from mlflow.utils.credentials import read_mlflow_creds

    return read_mlflow_creds().username or None


def _unauthorized(uri: str) -> Unauthorized:
    user = tracking_user()
    if user is None:
        return Unauthorized(
            f"the MLflow server at '{_redact(uri)}' asks for credentials and none are set",
            hint=CREDENTIALS_HINT,
        )
    return Unauthorized(
        f"the MLflow server at '{_redact(uri)}' refused the credentials of user '{user}' "
        "(MLFLOW_TRACKING_USERNAME)",
        hint="check MLFLOW_TRACKING_PASSWORD for that user; an admin can reset it",
    )


def server_error(exc: BaseException, uri: str, action: str, hint: str | None = None) -> LockgateError | None:
    """A refusal from a tracking server (401, 403) as a UserError naming the user, the action and
    the fix; None for anything else (which the caller re-raises)."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return None
    status = exc.get_http_status_code()  # type: ignore[no-untyped-call]
    if exc.error_code == "UNAUTHENTICATED" or status == 401:
        return _unauthorized(uri)
    if exc.error_code == "PERMISSION_DENIED" or status == 403:
        who = tracking_user()
        return Forbidden(
            f"user '{who or '(none)'}' may not {action} on the MLflow server at '{_redact(uri)}'",
            hint=hint or PERMISSION_HINT,
        )
    return None


@contextlib.contextmanager
def server_errors(conn: Connection, action: str, hint: str | None = None) -> Iterator[None]:
    """Turn a 401/403 from the tracking server inside the block into a UserError that says what was
    refused (``action``, e.g. "create a run in experiment 'churn'")."""
    try:
        yield
    except Exception as exc:
        translated = server_error(exc, conn.settings.tracking_uri, action, hint)
        if translated is None:
            raise
        raise translated from None


@dataclass(frozen=True)
class ServerAnswer:
    """What a tracking server said about itself: whether it answered as MLflow, its version and the
    user it sees (None without an auth app)."""

    uri: str
    is_answered: bool
    status: str
    version: str | None = None
    user: str | None = None
    is_admin: bool | None = None


def _get(uri: str, endpoint: str, timeout_s: float) -> Any:
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    return http_request(  # type: ignore[no-untyped-call]
        get_default_host_creds(uri.rstrip("/")),  # type: ignore[no-untyped-call]
        endpoint,
        "GET",
        max_retries=0,
        timeout=timeout_s,
        raise_on_status=False,
    )


def ask_server(uri: str, timeout_s: float = _ANSWER_TIMEOUT_S, *, is_about: bool = True) -> ServerAnswer:
    """Ask the MLflow server at ``uri`` whether it answers as MLflow with the credentials in force;
    raise a UserError naming the fix when it does not (401, 403, not an MLflow server). With
    ``is_about`` it is also asked its version and the user it sees."""
    from mlflow.exceptions import MlflowException

    probe_uri(uri)
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        health = _get(uri, "/health", timeout_s)
        response = _get(uri, search, timeout_s) if health.status_code == 200 else health
    except MlflowException as exc:
        raise StoreUnreachable(
            f"the MLflow tracking server at '{_redact(uri)}' did not answer: {exc.message}",
            hint="start the server or fix MLFLOW_TRACKING_URI (run `lockgate info` to see what is in force)",
        ) from None
    if health.status_code == 401:  # a proxy in front of the server that wants credentials
        raise _unauthorized(uri)
    if health.status_code != 200:
        raise UserError(
            f"'{_redact(uri)}' is not an MLflow tracking server: /health answered {health.status_code} "
            f"({health.headers.get('content-type', 'no content type')})",
            hint="check the host, port and path in MLFLOW_TRACKING_URI: it is the URL the server's UI "
            "is at, without '/#/...'",
        )
    if response.status_code == 401:
        raise _unauthorized(uri)
    if response.status_code == 403:
        raise Forbidden(
            f"user '{tracking_user()}' may not list experiments on the MLflow server at '{_redact(uri)}'",
            hint="ask an admin of the server for READ access",
        )
    is_json = response.headers.get("content-type", "").startswith("application/json")
    if response.status_code != 200 or not is_json:
        raise UserError(
            f"'{_redact(uri)}' is not an MLflow tracking server: {search.split('?')[0]} answered "
            f"{response.status_code} ({response.headers.get('content-type', 'no content type')})",
            hint="check the host, port and path in MLFLOW_TRACKING_URI: it is the URL the server's UI "
            "is at, without '/#/...'",
        )
    if not is_about:
        return ServerAnswer(uri=_redact(uri), is_answered=True, status="answered")
    version = _get(uri, "/version", timeout_s)
    user = _get(uri, "/api/2.0/mlflow/users/current", timeout_s)
    who = user.json().get("user", {}) if user.status_code == 200 else {}
    return ServerAnswer(
        uri=_redact(uri),
        is_answered=True,
        status="answered",
        version=version.text.strip() if version.status_code == 200 else None,
        user=who.get("username"),
        is_admin=who.get("is_admin"),
    )


def _redact(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(f":{parsed.password}@", ":***@")
    return uri


_answered: set[tuple[str, int]] = set()


def _ask_once(uri: str) -> None:
    """Ask a server once per process and credentials: a training loop that connects often pays once."""
    from mlflow.utils.credentials import read_mlflow_creds

    creds = read_mlflow_creds()
    key = (uri, hash((creds.username, creds.password, os.environ.get("MLFLOW_TRACKING_TOKEN"))))
    if key not in _answered:
        ask_server(uri, is_about=False)
        _answered.add(key)


@cache
def _configure_mlflow_once() -> None:
    # Fail in seconds, not minutes, when a server goes away in the middle of a command.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow's "View run ... at" lines would mix into output that scripts read
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def connect(settings: Settings | None = None) -> Connection:
    """Point MLflow at the configured stores and return a client for them."""
    settings = settings or current_settings()
    _configure_mlflow_once()
    for uri in dict.fromkeys((settings.tracking_uri, settings.registry_uri)):
        if urlparse(uri).scheme in ("http", "https"):
            _ask_once(uri)
        else:
            probe_uri(uri)

    import mlflow
    from mlflow import MlflowClient

    # MLflow configures its loggers on import; quiet its start-up chatter (table creation) afterwards.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    mlflow.set_tracking_uri(settings.tracking_uri)
    if settings.registry_uri != settings.tracking_uri:
        # Only when it differs: MLflow's registry follows the tracking URI by default, and a
        # process-wide registry URI would outlive this connection and mislead later clients.
        mlflow.set_registry_uri(settings.registry_uri)
    try:
        client = MlflowClient(settings.tracking_uri, settings.registry_uri)
    except Exception as exc:
        raise StoreUnreachable(
            f"the MLflow store '{_redact(settings.tracking_uri)}' could not be opened: {exc}",
            hint="check MLFLOW_TRACKING_URI and LOCKGATE_HOME (see `lockgate info`)",
        ) from exc
    return Connection(settings, client)


def _ensure_experiment(conn: Connection, name: str) -> str:
    from mlflow.exceptions import MlflowException

    existing = conn.client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            conn.client.restore_experiment(existing.experiment_id)
        return str(existing.experiment_id)
    artifact_location = None
    if conn.settings.is_default_store or "LOCKGATE_ARTIFACT_ROOT" in os.environ:
        artifact_location = f"{conn.settings.artifact_root.rstrip('/')}/{name}"
    try:
        with server_errors(conn, f"create experiment '{name}'"):
            return str(conn.client.create_experiment(name, artifact_location=artifact_location))
    except MlflowException:
        # Another process created it between our look-up and our create.
        again = conn.client.get_experiment_by_name(name)
        if again is None:
            raise
        return str(again.experiment_id)
