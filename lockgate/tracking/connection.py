"""The one place lockgate connects to MLflow: tracking URI, registry URI, experiments.

lockgate never writes MLflow's tables itself; everything goes through ``MlflowClient``. This module
points MLflow at the configured stores, checks that they answer (so an unreachable server fails in
seconds with its URI named, not after minutes of retries), and creates lockgate's experiments with
their artifacts under ``LOCKGATE_HOME`` when the default store is in use.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from lockgate.errors import StoreUnreachable, UserError
from lockgate.settings import Settings, current_settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["DATASETS_EXPERIMENT", "Connection", "connect", "probe_uri"]

DATASETS_EXPERIMENT = "lockgate-datasets"
_PROBE_TIMEOUT_S = 3.0


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


def _redact(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(f":{parsed.password}@", ":***@")
    return uri


@cache
def _configure_mlflow_once() -> None:
    # Fail in seconds, not minutes, when a server goes away in the middle of a command.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def connect(settings: Settings | None = None) -> Connection:
    """Point MLflow at the configured stores and return a client for them."""
    settings = settings or current_settings()
    _configure_mlflow_once()
    probe_uri(settings.tracking_uri)
    if settings.registry_uri != settings.tracking_uri:
        probe_uri(settings.registry_uri)

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
        return str(conn.client.create_experiment(name, artifact_location=artifact_location))
    except MlflowException:
        # Another process created it between our look-up and our create.
        again = conn.client.get_experiment_by_name(name)
        if again is None:
            raise
        return str(again.experiment_id)
