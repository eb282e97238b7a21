"""The store contract, run against every implementation: in memory, SQLite, and Postgres if set."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lockgate.errors import Conflict, NotFound, StoreUnreachable, ValidationError
from lockgate.rollout.controller import (
    Phase,
    RecordEvent,
    initial_state,
    pause,
    start,
    step,
)
from lockgate.rollout.policy import ThresholdPolicy
from lockgate.rollout.spec import DeploymentSpec, parse_spec
from lockgate.rollout.sqlstore import SqlStore
from lockgate.rollout.store import CapturedRequest, InMemoryStore, Store, default_store_url
from lockgate.stats.accumulators import VariantStats
from lockgate.testing import InMemoryStore as ExportedInMemoryStore

POSTGRES_URL = os.environ.get("LOCKGATE_TEST_POSTGRES_URL")


def make_spec(name: str = "fraud") -> DeploymentSpec:
    return parse_spec(
        {
            "name": name,
            "variants": {"stable": "models:/fraud/3", "canary": "models:/fraud/4"},
            "baseline": "stable",
            "candidate": "canary",
            "strategy": {
                "type": "canary",
                "steps": [{"weight_percent": 10, "min_duration_s": 10}, {"weight_percent": 50}],
            },
        }
    )


def served(requests: int, errors: int = 0) -> VariantStats:
    stats = VariantStats(requests=requests, errors=errors)
    stats.latency.update(np.full(requests, 12.0))
    return stats


def event(action: str = "note", actor: str = "alice", **numbers: float) -> RecordEvent:
    return RecordEvent(1.0, actor, action, "because", "pending", "stepping", numbers)


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.integration,
                pytest.mark.skipif(
                    POSTGRES_URL is None, reason="set LOCKGATE_TEST_POSTGRES_URL to run on Postgres"
                ),
            ],
        ),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened: Store
    if request.param == "memory":
        opened = InMemoryStore()
    elif request.param == "sqlite":
        opened = SqlStore(f"sqlite:///{tmp_path / 'state' / 'rollouts.db'}")
    else:
        assert POSTGRES_URL is not None
        opened = SqlStore(POSTGRES_URL)
        _drop_all(opened)
    yield opened
    opened.close()


def _drop_all(store: Store) -> None:
    """A clean slate on a shared Postgres server: the tables are emptied, not dropped."""
    assert isinstance(store, SqlStore)
    with store._engine.begin() as connection:
        for table in (
            "captured_requests",
            "feedback_joins",
            "accumulator_snapshots",
            "rollout_events",
            "deployments",
        ):
            connection.exec_driver_sql(f"DELETE FROM {table}")


def test_a_created_deployment_reads_back_equal(store: Store) -> None:
    spec = make_spec()
    created = store.create_deployment(spec, initial_state(spec), now=100.0)
    assert created.version == 1
    read = store.get_deployment("fraud")
    assert read.spec == spec
    assert read.state.to_dict() == initial_state(spec).to_dict()
    assert (read.version, read.created_at, read.updated_at) == (1, 100.0, 100.0)


def test_names_are_unique_and_missing_names_are_not_found(store: Store) -> None:
    spec = make_spec()
    store.create_deployment(spec, initial_state(spec), now=1.0)
    with pytest.raises(Conflict, match="already exists"):
        store.create_deployment(spec, initial_state(spec), now=2.0)
    with pytest.raises(NotFound, match="'nope'"):
        store.get_deployment("nope")
    with pytest.raises(NotFound):
        store.save_state("nope", initial_state(spec), expected_version=1, now=3.0)
    with pytest.raises(NotFound):
        store.events("nope")
    with pytest.raises(NotFound):
        store.save_snapshot("nope", "w1", {}, now=1.0)


def test_deployments_are_listed_by_name(store: Store) -> None:
    for name in ("zeta", "alpha", "mid"):
        store.create_deployment(make_spec(name), initial_state(make_spec(name)), now=1.0)
    assert [d.name for d in store.list_deployments()] == ["alpha", "mid", "zeta"]


def test_state_writes_are_compare_and_set(store: Store) -> None:
    spec = make_spec()
    store.create_deployment(spec, initial_state(spec), now=0.0)
    first = store.get_deployment("fraud")
    second = store.get_deployment("fraud")  # a second controller read the same version

    started, actions = start(spec, first.state, {}, now=1.0)
    events = [a for a in actions if isinstance(a, RecordEvent)]
    saved = store.save_state("fraud", started, expected_version=first.version, now=1.0, events=events)
    assert saved.version == 2
    assert saved.state.phase is Phase.STEPPING
    assert saved.updated_at == 1.0

    other, other_actions = pause(spec, start(spec, second.state, {}, 1.5)[0], 2.0, actor="bob")
    other_events = [a for a in other_actions if isinstance(a, RecordEvent)]
    with pytest.raises(Conflict, match="version 2, not 1") as info:
        store.save_state("fraud", other, expected_version=second.version, now=2.0, events=other_events)
    assert info.value.detail == {"expected_version": 1, "current_version": 2}
    # The loser wrote nothing: neither its state nor its events.
    assert store.get_deployment("fraud").state.phase is Phase.STEPPING
    assert [e.action for e in store.events("fraud")] == ["start"]


def test_a_new_spec_replaces_the_old_one_compare_and_set(store: Store) -> None:
    spec = make_spec()
    created = store.create_deployment(spec, initial_state(spec), now=0.0)
    store.save_snapshot("fraud", "w1", {"stable": served(40), "canary": served(7)}, now=0.5)
    changed = replace(spec, variants={"stable": "models:/fraud/3", "canary": "models:/fraud/5"})
    saved = store.replace_spec(
        changed, initial_state(changed), expected_version=created.version, now=1.0, events=[event("deploy")]
    )
    assert saved.version == 2
    assert store.get_deployment("fraud").spec == changed
    assert [e.action for e in store.events("fraud")] == ["deploy"]
    counters = store.load_snapshot("fraud")
    assert counters["stable"].requests == 40  # the same model: its counters carry on
    assert "canary" not in counters  # a new model under the name starts from zero
    with pytest.raises(Conflict, match="version 2, not 1"):
        store.replace_spec(spec, initial_state(spec), expected_version=1, now=2.0)
    assert store.get_deployment("fraud").spec == changed
    with pytest.raises(NotFound):
        store.replace_spec(make_spec("other"), initial_state(spec), expected_version=1, now=2.0)


def test_a_redeploy_starts_new_counters_for_every_worker_of_a_changed_variant(store: Store) -> None:
    """Counters belong to (variant, model): a worker that died before the redeploy left its row,
    which must not be credited to the new model (the 16,048 requests of issue 20)."""
    spec = make_spec()
    created = store.create_deployment(spec, initial_state(spec), now=0.0)
    store.save_snapshot("fraud", "dead", {"stable": served(500), "canary": served(16_048, 9)}, now=0.5)
    store.save_snapshot("fraud", "live", {"stable": served(20), "canary": served(30)}, now=0.6)
    changed = replace(spec, variants={"stable": "models:/fraud/3", "canary": "models:/fraud/5"})
    store.replace_spec(changed, initial_state(changed), expected_version=created.version, now=1.0)
    store.save_snapshot("fraud", "live", {"stable": served(21), "canary": served(2)}, now=1.5)
    counters = store.load_snapshot("fraud")
    assert counters["stable"].requests == 521
    assert (counters["canary"].requests, counters["canary"].errors) == (2, 0)


def test_feedback_joins_count_an_outcome_once_across_writers(store: Store) -> None:
    spec = make_spec()
    store.create_deployment(spec, initial_state(spec), now=0.0)
    store.save_joins("fraud", [("r1", "stable"), ("r2", "canary")], now=1.0)
    store.save_joins("fraud", [("r1", "canary")], now=2.0)  # an id keeps its first variant
    assert store.claim_outcome("fraud", "r1", None, {"label": True}, now=3.0) == ("stable", None)
    # the same request's outcome again (another gateway, a retry): not counted, the first one shown
    assert store.claim_outcome("fraud", "r1", "stable", {"label": False}, now=4.0) == (
        "stable",
        {"label": True},
    )
    assert store.claim_outcome("fraud", "nope", None, {"value": 1.0}, now=5.0) == (None, None)
    # a gateway that knows the variant but has not flushed the join yet stores both at once
    assert store.claim_outcome("fraud", "r3", "canary", {"value": 2.5}, now=6.0) == ("canary", None)
    store.save_joins("fraud", [(f"n{i}", "stable") for i in range(5)], now=10.0)
    store.prune_joins("fraud", keep=5)
    assert store.claim_outcome("fraud", "r2", None, {"value": 1.0}, now=11.0) == (None, None)
    assert store.claim_outcome("fraud", "n4", None, {"value": 1.0}, now=11.0) == ("stable", None)
    with pytest.raises(NotFound):
        store.save_joins("ghost", [("r", "a")], now=1.0)


def captured(request_id: str, *, outputs: dict[str, object] | None = None) -> CapturedRequest:
    return CapturedRequest(
        deployment="fraud",
        request_id=request_id,
        at=5.0,
        variant="stable",
        model_name="fraud",
        model_version="3",
        status=200 if outputs is not None else 500,
        latency_ms=1.5,
        inputs={"kind": "array", "dtype": "float64", "data": [[1.0, 2.5]]},
        outputs=outputs,
    )


def test_captured_requests_read_back_newest_last_and_are_pruned(store: Store) -> None:
    spec = make_spec()
    store.create_deployment(spec, initial_state(spec), now=0.0)
    assert store.captures("fraud") == []
    answer = {"label": {"dtype": "int64", "data": [1]}}
    store.save_captures("fraud", [captured("r1", outputs=answer), captured("r2")])
    store.save_captures("fraud", [captured(f"n{i}", outputs=answer) for i in range(4)])
    every = store.captures("fraud")
    assert [row.request_id for row in every] == ["r1", "r2", "n0", "n1", "n2", "n3"]
    assert [row.id for row in every] == sorted(row.id for row in every) and every[0].id > 0
    first = every[0]
    assert first.inputs == {"kind": "array", "dtype": "float64", "data": [[1.0, 2.5]]}
    assert first.outputs == answer and first.status == 200 and first.latency_ms == 1.5
    assert every[1].outputs is None and every[1].status == 500
    assert (first.variant, first.model_name, first.model_version) == ("stable", "fraud", "3")
    assert [row.request_id for row in store.captures("fraud", limit=2)] == ["n2", "n3"]
    store.prune_captures("fraud", keep=3)
    assert [row.request_id for row in store.captures("fraud")] == ["n1", "n2", "n3"]
    store.prune_captures("fraud", keep=10)
    assert len(store.captures("fraud")) == 3
    with pytest.raises(NotFound):
        store.save_captures("ghost", [captured("r")])
    with pytest.raises(NotFound):
        store.captures("ghost")


def test_the_audit_log_is_ordered_and_keeps_who_and_why(store: Store) -> None:
    spec = make_spec()
    store.create_deployment(spec, initial_state(spec), now=0.0)
    store.append_events("fraud", [event("a", ratio=2.5), event("b", actor="bob")])
    store.append_events("fraud", [event("c", bad=float("inf"))])
    log = store.events("fraud")
    assert [e.action for e in log] == ["a", "b", "c"]
    assert [e.id for e in log] == sorted(e.id for e in log)
    assert log[0].numbers == {"ratio": 2.5}
    assert (log[1].actor, log[1].reason, log[1].from_phase, log[1].to_phase) == (
        "bob",
        "because",
        "pending",
        "stepping",
    )
    assert log[2].numbers == {"bad": None}
    assert [e.action for e in store.events("fraud", after_id=log[0].id)] == ["b", "c"]
    assert [e.action for e in store.events("fraud", limit=1)] == ["a"]


def test_snapshots_merge_workers_and_replace_a_workers_last(store: Store) -> None:
    spec = make_spec()
    store.create_deployment(spec, initial_state(spec), now=0.0)
    assert store.load_snapshot("fraud") == {}
    store.save_snapshot("fraud", "w1", {"stable": served(100, 1), "canary": served(10)}, now=1.0)
    store.save_snapshot("fraud", "w2", {"stable": served(50, 2)}, now=1.0)
    store.save_snapshot("fraud", "w1", {"stable": served(150, 3), "canary": served(20)}, now=2.0)
    merged = store.load_snapshot("fraud")
    assert (merged["stable"].requests, merged["stable"].errors) == (200, 5)
    assert merged["stable"].latency.count == 200
    assert merged["canary"].requests == 20


def test_one_lease_holder_at_a_time(store: Store) -> None:
    spec = make_spec()
    store.create_deployment(spec, initial_state(spec), now=0.0)
    assert store.acquire_lease("fraud", "gw-1", now=0.0, ttl_s=10)
    assert not store.acquire_lease("fraud", "gw-2", now=5.0, ttl_s=10)
    assert store.acquire_lease("fraud", "gw-1", now=9.0, ttl_s=10)  # renewal
    assert not store.acquire_lease("fraud", "gw-2", now=18.0, ttl_s=10)
    assert store.acquire_lease("fraud", "gw-2", now=19.0, ttl_s=10)  # expired: taken over
    with pytest.raises(NotFound):
        store.acquire_lease("nope", "gw-1", now=0.0, ttl_s=10)
    with pytest.raises(ValidationError):
        store.acquire_lease("fraud", "gw-1", now=0.0, ttl_s=0)


def test_the_shell_loop_runs_on_the_store(store: Store) -> None:
    """load spec → create → loop {snapshot; step; persist state + events} until it finishes."""
    spec = make_spec()
    policy = ThresholdPolicy(min_requests=50)
    deployment = store.create_deployment(spec, initial_state(spec), now=0.0)
    state, actions = start(spec, deployment.state, store.load_snapshot("fraud"), now=0.0)
    events = [a for a in actions if isinstance(a, RecordEvent)]
    deployment = store.save_state("fraud", state, expected_version=1, now=0.0, events=events)
    for tick in range(1, 30):
        now = float(tick)
        store.save_snapshot(
            "fraud", "w1", {"stable": served(100 * tick), "canary": served(20 * tick)}, now=now
        )
        state, actions = step(spec, deployment.state, store.load_snapshot("fraud"), now, policy)
        if actions:
            events = [a for a in actions if isinstance(a, RecordEvent)]
            deployment = store.save_state(
                "fraud", state, expected_version=deployment.version, now=now, events=events
            )
        if deployment.state.is_finished:
            break
    assert deployment.state.phase is Phase.PROMOTED
    assert [e.action for e in store.events("fraud")] == ["start", "advance", "promote"]


def test_sqlite_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "rollouts.db"
    spec = make_spec()
    first = SqlStore(path)
    first.create_deployment(spec, initial_state(spec), now=0.0)
    started, actions = start(spec, initial_state(spec), {"stable": served(10)}, now=1.0)
    events = [a for a in actions if isinstance(a, RecordEvent)]
    first.save_state("fraud", started, expected_version=1, now=1.0, events=events)
    first.save_snapshot("fraud", "w1", {"stable": served(30)}, now=1.0)
    first.close()

    again = SqlStore(f"sqlite:///{path}")  # migrations are idempotent on reopen
    deployment = again.get_deployment("fraud")
    assert deployment.state.to_dict() == started.to_dict()
    assert deployment.version == 2
    assert again.load_snapshot("fraud")["stable"].requests == 30
    assert [e.action for e in again.events("fraud")] == ["start"]
    again.close()


def test_sqlite_schema_is_versioned_apart_from_mlflow(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    SqlStore(path).close()
    connection = sqlite3.connect(path)
    try:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = connection.execute("SELECT version_num FROM lockgate_rollout_version").fetchall()
    finally:
        connection.close()
    assert {"deployments", "rollout_events", "accumulator_snapshots"} <= tables
    assert "alembic_version" not in tables
    assert "captured_requests" in tables
    assert version == [("0003",)]


def test_concurrent_writers_never_lose_an_update(tmp_path: Path) -> None:
    """Threads on separate SqlStore connections each bump a counter by read → write with retry."""
    path = tmp_path / "race.db"
    spec = make_spec()
    setup = SqlStore(path)
    setup.create_deployment(spec, initial_state(spec), now=0.0)
    setup.close()
    writers, bumps = 4, 5
    conflicts = []

    def writer(index: int) -> None:
        store = SqlStore(path)
        try:
            for _ in range(bumps):
                while True:
                    current = store.get_deployment("fraud")
                    bumped = replace(current.state, stage_index=current.state.stage_index + 1)
                    try:
                        store.save_state("fraud", bumped, expected_version=current.version, now=float(index))
                        break
                    except Conflict:
                        conflicts.append(index)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check = SqlStore(path)
    final = check.get_deployment("fraud")
    check.close()
    assert final.state.stage_index == writers * bumps
    assert final.version == 1 + writers * bumps


def test_an_unreachable_store_names_its_url(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(StoreUnreachable, match="cannot open the rollout store"):
        SqlStore(f"sqlite:///{blocker / 'rollouts.db'}")


def test_the_default_url_is_a_file_under_home(tmp_path: Path) -> None:
    assert default_store_url(tmp_path) == f"sqlite:///{tmp_path / 'rollouts.db'}"


def test_lockgate_testing_exports_the_in_memory_store() -> None:
    assert ExportedInMemoryStore is InMemoryStore


_OPEN_WHEN_TOLD = """
import os, sys, time
from lockgate.rollout.sqlstore import SqlStore
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
SqlStore(sys.argv[1]).close()
"""


def _open_at_once(url: str, go: Path, processes: int = 4) -> list[int]:
    """Open a new store from several processes at the same instant (each waits, imported, for the
    file ``go``); their exit codes."""
    import subprocess
    import sys
    import time

    opened = [
        subprocess.Popen([sys.executable, "-c", _OPEN_WHEN_TOLD, url, str(go)]) for _ in range(processes)
    ]
    time.sleep(3)  # let them import; a slow one only opens later, which is the easy case
    go.touch()
    return [process.wait(120) for process in opened]


@pytest.mark.integration
def test_processes_opening_a_new_sqlite_store_at_once_all_succeed(tmp_path: Path) -> None:
    # `lockgate serve --workers 2` on a new store: both workers migrated it, one found its tables
    # half-made ("table lockgate_rollout_version already exists") and exited with code 2
    url = f"sqlite:///{tmp_path / 'new' / 'rollouts.db'}"
    assert _open_at_once(url, tmp_path / "go") == [0, 0, 0, 0]
    store = SqlStore(url)
    assert store.list_deployments() == []
    store.close()


@pytest.mark.integration
@pytest.mark.skipif(POSTGRES_URL is None, reason="set LOCKGATE_TEST_POSTGRES_URL to run on Postgres")
def test_processes_opening_a_new_postgres_store_at_once_all_succeed(tmp_path: Path) -> None:
    import uuid

    import sqlalchemy as sa

    assert POSTGRES_URL is not None
    name = f"lockgate_new_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        assert _open_at_once(url, tmp_path / "go") == [0, 0, 0, 0]
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
