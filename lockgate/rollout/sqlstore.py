"""The rollout store in a SQL database, through SQLAlchemy 2: SQLite by default, Postgres by URL.

Opening a :class:`SqlStore` migrates the schema with Alembic (the scripts live in ``migrations/``
next to this file; no alembic.ini is needed). State writes are one ``UPDATE ... WHERE version = ?``
so two writers cannot both step a rollout, and the state and its events commit together.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from lockgate.errors import StoreUnreachable
from lockgate.rollout.controller import RecordEvent, RolloutState
from lockgate.rollout.spec import DeploymentSpec, parse_spec
from lockgate.rollout.store import (
    AuditEvent,
    CapturedRequest,
    Deployment,
    _check_ttl,
    _finite,
    _merge,
    _missing,
    _stale,
    _taken,
    changed_variants,
)
from lockgate.stats.accumulators import VariantStats

__all__ = ["SqlStore"]

_MIGRATIONS = Path(__file__).parent / "migrations"

_metadata = sa.MetaData()
_deployments = sa.Table(
    "deployments",
    _metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("phase", sa.String(32), nullable=False),
    sa.Column("weights", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("lease_holder", sa.String(255)),
    sa.Column("lease_expires_at", sa.Float),
)
_events = sa.Table(
    "rollout_events",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment", sa.String(63), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("from_phase", sa.String(32), nullable=False),
    sa.Column("to_phase", sa.String(32), nullable=False),
    sa.Column("numbers", sa.Text, nullable=False),
)
_snapshots = sa.Table(
    "accumulator_snapshots",
    _metadata,
    sa.Column("deployment", sa.String(63), primary_key=True),
    sa.Column("variant", sa.String(63), primary_key=True),
    sa.Column("worker_id", sa.String(255), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("stats", sa.Text, nullable=False),
)
_joins = sa.Table(
    "feedback_joins",
    _metadata,
    sa.Column("deployment", sa.String(63), primary_key=True),
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("variant", sa.String(63), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("outcome", sa.Text),
)
_captures = sa.Table(
    "captured_requests",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment", sa.String(63), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("variant", sa.String(63), nullable=False),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(63), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("outputs", sa.Text),
)


class SqlStore:
    """The store in a SQL database: ``sqlite:///path`` (the default) or ``postgresql+psycopg://``.

    Opening migrates the schema to the latest revision.
    """

    def __init__(self, url: str | Path) -> None:
        self.url = url if isinstance(url, str) else f"sqlite:///{url}"
        try:
            self._engine = _engine(self.url)
            _migrate(self._engine)
        except (sa.exc.OperationalError, OSError) as exc:
            cause = exc.orig if isinstance(exc, sa.exc.OperationalError) else exc
            raise StoreUnreachable(
                f"cannot open the rollout store at {_redact(self.url)}: {cause}",
                hint="check the URL, that the server is up, and that the file's folder is writable",
            ) from exc

    def close(self) -> None:
        self._engine.dispose()

    def create_deployment(self, spec: DeploymentSpec, state: RolloutState, *, now: float) -> Deployment:
        row = {
            "name": spec.name,
            "spec": json.dumps(spec.to_dict()),
            "state": json.dumps(state.to_dict()),
            "phase": state.phase.value,
            "weights": json.dumps(dict(state.weights_bp)),
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._engine.begin() as connection:
                connection.execute(_deployments.insert().values(**row))
        except sa.exc.IntegrityError as exc:
            raise _taken(spec.name) from exc
        return Deployment(spec.name, spec, state, 1, now, now)

    def get_deployment(self, name: str) -> Deployment:
        with self._engine.connect() as connection:
            row = connection.execute(sa.select(_deployments).where(_deployments.c.name == name)).first()
        if row is None:
            raise _missing(name)
        return _deployment_from_row(row._mapping)

    def list_deployments(self) -> list[Deployment]:
        with self._engine.connect() as connection:
            rows = connection.execute(sa.select(_deployments).order_by(_deployments.c.name))
            return [_deployment_from_row(row._mapping) for row in rows]

    def save_state(
        self,
        name: str,
        state: RolloutState,
        *,
        expected_version: int,
        now: float,
        events: Sequence[RecordEvent] = (),
    ) -> Deployment:
        return self._write(name, state, None, expected_version, now, events)

    def replace_spec(
        self,
        spec: DeploymentSpec,
        state: RolloutState,
        *,
        expected_version: int,
        now: float,
        events: Sequence[RecordEvent] = (),
    ) -> Deployment:
        return self._write(spec.name, state, spec, expected_version, now, events)

    def _write(
        self,
        name: str,
        state: RolloutState,
        spec: DeploymentSpec | None,
        expected_version: int,
        now: float,
        events: Sequence[RecordEvent],
    ) -> Deployment:
        values: dict[str, Any] = {
            "state": json.dumps(state.to_dict()),
            "phase": state.phase.value,
            "weights": json.dumps(dict(state.weights_bp)),
            "version": _deployments.c.version + 1,
            "updated_at": now,
        }
        if spec is not None:
            values["spec"] = json.dumps(spec.to_dict())
        with self._engine.begin() as connection:
            if spec is not None:
                before = connection.execute(
                    sa.select(_deployments.c.spec).where(_deployments.c.name == name)
                ).scalar()
                if before is not None:
                    stale = changed_variants(parse_spec(json.loads(before)), spec)
                    if stale:
                        connection.execute(
                            _snapshots.delete().where(
                                _snapshots.c.deployment == name, _snapshots.c.variant.in_(sorted(stale))
                            )
                        )
            result = connection.execute(
                _deployments.update()
                .where(_deployments.c.name == name, _deployments.c.version == expected_version)
                .values(**values)
            )
            if result.rowcount != 1:
                current = connection.execute(
                    sa.select(_deployments.c.version).where(_deployments.c.name == name)
                ).scalar()
                if current is None:
                    raise _missing(name)
                raise _stale(name, expected_version, int(current))
            _insert_events(connection, name, events)
            row = connection.execute(sa.select(_deployments).where(_deployments.c.name == name)).one()
        return _deployment_from_row(row._mapping)

    def append_events(self, name: str, events: Sequence[RecordEvent]) -> None:
        with self._engine.begin() as connection:
            self._require(connection, name)
            _insert_events(connection, name, events)

    def events(self, name: str, *, after_id: int = 0, limit: int | None = None) -> list[AuditEvent]:
        query = (
            sa.select(_events)
            .where(_events.c.deployment == name, _events.c.id > after_id)
            .order_by(_events.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._engine.connect() as connection:
            self._require(connection, name)
            return [
                AuditEvent(
                    id=row.id,
                    deployment=row.deployment,
                    at=row.at,
                    actor=row.actor,
                    action=row.action,
                    reason=row.reason,
                    from_phase=row.from_phase,
                    to_phase=row.to_phase,
                    numbers=json.loads(row.numbers),
                )
                for row in connection.execute(query)
            ]

    def save_snapshot(
        self, name: str, worker_id: str, stats: Mapping[str, VariantStats], *, now: float
    ) -> None:
        with self._engine.begin() as connection:
            self._require(connection, name)
            connection.execute(
                _snapshots.delete().where(
                    _snapshots.c.deployment == name, _snapshots.c.worker_id == worker_id
                )
            )
            if stats:
                connection.execute(
                    _snapshots.insert(),
                    [
                        {
                            "deployment": name,
                            "variant": variant,
                            "worker_id": worker_id,
                            "at": now,
                            "stats": json.dumps(variant_stats.to_dict()),
                        }
                        for variant, variant_stats in stats.items()
                    ],
                )

    def load_snapshot(self, name: str) -> dict[str, VariantStats]:
        with self._engine.connect() as connection:
            self._require(connection, name)
            rows = connection.execute(
                sa.select(_snapshots.c.variant, _snapshots.c.stats)
                .where(_snapshots.c.deployment == name)
                .order_by(_snapshots.c.variant, _snapshots.c.worker_id)
            )
            return _merge((row.variant, VariantStats.from_dict(json.loads(row.stats))) for row in rows)

    def acquire_lease(self, name: str, holder: str, *, now: float, ttl_s: float) -> bool:
        _check_ttl(ttl_s)
        with self._engine.begin() as connection:
            result = connection.execute(
                _deployments.update()
                .where(
                    _deployments.c.name == name,
                    sa.or_(
                        _deployments.c.lease_holder.is_(None),
                        _deployments.c.lease_holder == holder,
                        _deployments.c.lease_expires_at <= now,
                    ),
                )
                .values(lease_holder=holder, lease_expires_at=now + ttl_s)
            )
            if result.rowcount == 1:
                return True
            self._require(connection, name)
            return False

    def save_joins(self, name: str, joins: Sequence[tuple[str, str]], *, now: float) -> None:
        if not joins:
            return
        rows = [{"deployment": name, "request_id": r, "variant": v, "at": now} for r, v in joins]
        with self._engine.begin() as connection:
            self._require(connection, name)
            connection.execute(self._insert_new(_joins), rows)

    def claim_outcome(
        self,
        name: str,
        request_id: str,
        variant: str | None,
        outcome: Mapping[str, Any],
        *,
        now: float,
    ) -> tuple[str | None, dict[str, Any] | None]:
        where = (_joins.c.deployment == name, _joins.c.request_id == request_id)
        with self._engine.begin() as connection:
            self._require(connection, name)
            if variant is not None:
                row = {"deployment": name, "request_id": request_id, "variant": variant, "at": now}
                connection.execute(self._insert_new(_joins), [row])
            claimed = connection.execute(
                _joins.update().where(*where, _joins.c.outcome.is_(None)).values(outcome=json.dumps(outcome))
            ).rowcount
            found = connection.execute(sa.select(_joins.c.variant, _joins.c.outcome).where(*where)).first()
        if found is None:
            return None, None
        return str(found.variant), None if claimed == 1 else json.loads(found.outcome)

    def prune_joins(self, name: str, *, keep: int) -> None:
        with self._engine.begin() as connection:
            cutoff = connection.execute(
                sa.select(_joins.c.at)
                .where(_joins.c.deployment == name)
                .order_by(_joins.c.at.desc())
                .offset(keep)
                .limit(1)
            ).scalar()
            if cutoff is not None:
                connection.execute(_joins.delete().where(_joins.c.deployment == name, _joins.c.at <= cutoff))

    def save_captures(self, name: str, rows: Sequence[CapturedRequest]) -> None:
        if not rows:
            return
        values = [
            {
                "deployment": name,
                "request_id": row.request_id[:128],
                "at": row.at,
                "variant": row.variant,
                "model_name": row.model_name[:255],
                "model_version": row.model_version[:63],
                "status": row.status,
                "latency_ms": row.latency_ms,
                "inputs": json.dumps(row.inputs),
                "outputs": None if row.outputs is None else json.dumps(row.outputs),
            }
            for row in rows
        ]
        with self._engine.begin() as connection:
            self._require(connection, name)
            connection.execute(_captures.insert(), values)

    def captures(self, name: str, *, limit: int | None = None) -> list[CapturedRequest]:
        query = sa.select(_captures).where(_captures.c.deployment == name).order_by(_captures.c.id.desc())
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self._engine.connect() as connection:
            self._require(connection, name)
            rows = connection.execute(query).all()
        return [
            CapturedRequest(
                deployment=row.deployment,
                request_id=row.request_id,
                at=row.at,
                variant=row.variant,
                model_name=row.model_name,
                model_version=row.model_version,
                status=row.status,
                latency_ms=row.latency_ms,
                inputs=json.loads(row.inputs),
                outputs=None if row.outputs is None else json.loads(row.outputs),
                id=row.id,
            )
            for row in reversed(rows)
        ]

    def prune_captures(self, name: str, *, keep: int) -> None:
        with self._engine.begin() as connection:
            cutoff = connection.execute(
                sa.select(_captures.c.id)
                .where(_captures.c.deployment == name)
                .order_by(_captures.c.id.desc())
                .offset(max(keep, 0))
                .limit(1)
            ).scalar()
            if cutoff is not None:
                connection.execute(
                    _captures.delete().where(_captures.c.deployment == name, _captures.c.id <= cutoff)
                )

    def _insert_new(self, table: sa.Table) -> Any:
        """INSERT that leaves rows already there alone (SQLite and Postgres alike)."""
        if self._engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()

    @staticmethod
    def _require(connection: Connection, name: str) -> None:
        found = connection.execute(sa.select(_deployments.c.name).where(_deployments.c.name == name)).first()
        if found is None:
            raise _missing(name)


_MIGRATION_LOCK = threading.Lock()


_PG_MIGRATION_LOCK_KEY = 0x6C6F636B67617465  # "lockgate": one advisory lock for every lockgate store


@contextlib.contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    """For a SQLite file, an exclusive lock on a file beside it (none for other databases)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{Path(database).expanduser()}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _migrate(engine: Engine) -> None:
    """Upgrade the schema to the latest revision, one opener at a time.

    Alembic's ``context`` is one module-level proxy, so two stores opening at once in one process
    (threads) would trample each other's migration: the thread lock runs them one at a time.
    Processes opening a new store at once (``--workers N``, several gateways starting together)
    would both create its tables ("table ... already exists"): a file lock beside a SQLite file,
    and a transaction-scoped advisory lock on Postgres, run them one after the other, and the
    second finds the schema at head.
    """
    with _MIGRATION_LOCK, _file_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY})
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets readers (the dashboard, the CLI) work while the controller writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        _report_unreachable(engine, url)
        return engine
    # a store that went away answers within seconds instead of hanging a controller tick forever
    connect_args = {"connect_timeout": 10} if url.startswith("postgresql") else {}
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    _report_unreachable(engine, url)
    return engine


def _report_unreachable(engine: Engine, url: str) -> None:
    """A lost connection or a database that refuses one becomes :class:`StoreUnreachable` (503,
    "retry"), naming the store, wherever it happens: the admin API says why instead of a 500,
    and the controller loop logs it and tries again at the next tick."""

    @sa.event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        error = context.sqlalchemy_exception
        if context.is_disconnect or isinstance(error, sa.exc.OperationalError):
            cause = context.original_exception
            raise StoreUnreachable(
                f"the rollout store at {_redact(url)} cannot be reached: {str(cause).strip()[:300]}",
                hint="serving goes on at the current weights and the rollout waits; it carries on "
                "once the database is back",
            ) from cause


def _redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


def _insert_events(connection: Connection, name: str, events: Sequence[RecordEvent]) -> None:
    if events:
        connection.execute(_events.insert(), [_event_row(name, event) for event in events])


def _event_row(name: str, event: RecordEvent) -> dict[str, Any]:
    return {
        "deployment": name,
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "reason": event.reason,
        "from_phase": event.from_phase,
        "to_phase": event.to_phase,
        "numbers": json.dumps(_finite(event.numbers)),
    }


def _deployment_from_row(row: sa.RowMapping) -> Deployment:
    return Deployment(
        name=row["name"],
        spec=parse_spec(json.loads(row["spec"])),
        state=RolloutState.from_dict(json.loads(row["state"])),
        version=int(row["version"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )
