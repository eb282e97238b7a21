"""Where rollouts live between ticks and restarts: the :class:`Store` contract, and a fake.

A :class:`Store` keeps deployments (spec, state, weights, a version number), an append-only audit
log of rollout events, each worker's latest accumulator snapshot, and (when capture is on) a
bounded sample of answered requests for replay. Two implementations pass the
same conformance tests: :class:`lockgate.rollout.sqlstore.SqlStore` (a SQLite file by default,
Postgres by URL) and :class:`InMemoryStore` here (for tests and ``lockgate.testing``), which keeps
this module free of database imports.

State writes are compare-and-set on the version number, so two controllers cannot both step one
rollout: the loser gets :class:`lockgate.errors.Conflict` and re-reads. The events of a state write
are appended in the same transaction, so the log never disagrees with the state. Time is passed in.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from lockgate.errors import Conflict, NotFound, ValidationError
from lockgate.rollout.controller import RecordEvent, RolloutState
from lockgate.rollout.spec import DeploymentSpec, parse_spec
from lockgate.stats.accumulators import VariantStats

__all__ = [
    "AuditEvent",
    "CapturedRequest",
    "Deployment",
    "InMemoryStore",
    "Store",
    "default_store_url",
]


@dataclass(frozen=True)
class Deployment:
    """A stored deployment; ``version`` is what the next :meth:`Store.save_state` must expect."""

    name: str
    spec: DeploymentSpec
    state: RolloutState
    version: int
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class AuditEvent:
    """One row of the append-only audit log (a stored :class:`RecordEvent` with its id)."""

    id: int
    deployment: str
    at: float
    actor: str
    action: str
    reason: str
    from_phase: str
    to_phase: str
    numbers: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class CapturedRequest:
    """One sampled answered request of a deployment: what came in, what went out, who answered.

    ``inputs`` and ``outputs`` are JSON documents (:mod:`lockgate.monitor.capture` encodes and
    decodes them); ``outputs`` is None when the request failed. ``id`` is the store's, in the order
    rows were written (0 before that).
    """

    deployment: str
    request_id: str
    at: float
    variant: str
    model_name: str
    model_version: str
    status: int
    latency_ms: float
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any] | None
    id: int = 0


class Store(Protocol):
    """What the rollout shell needs from storage."""

    def create_deployment(self, spec: DeploymentSpec, state: RolloutState, *, now: float) -> Deployment:
        """Store a new deployment at version 1; :class:`Conflict` if the name is taken."""
        ...

    def get_deployment(self, name: str) -> Deployment:
        """The deployment, or :class:`NotFound`."""
        ...

    def list_deployments(self) -> list[Deployment]:
        """All deployments, by name."""
        ...

    def save_state(
        self,
        name: str,
        state: RolloutState,
        *,
        expected_version: int,
        now: float,
        events: Sequence[RecordEvent] = (),
    ) -> Deployment:
        """Write the state and append ``events`` at once if the version is still
        ``expected_version``; otherwise :class:`Conflict` and nothing is written."""
        ...

    def replace_spec(
        self,
        spec: DeploymentSpec,
        state: RolloutState,
        *,
        expected_version: int,
        now: float,
        events: Sequence[RecordEvent] = (),
    ) -> Deployment:
        """Give an existing deployment a new spec and state (a new rollout), compare-and-set on
        the version like :meth:`save_state`. Counters belong to a variant's model: the
        accumulator snapshots of a variant whose model URI is unchanged are kept, those of a
        variant with a new model (or a new name) are dropped, so it starts counting from zero."""
        ...

    def append_events(self, name: str, events: Sequence[RecordEvent]) -> None:
        """Append audit events without changing the state."""
        ...

    def events(self, name: str, *, after_id: int = 0, limit: int | None = None) -> list[AuditEvent]:
        """The deployment's audit log in order, from the event after ``after_id``."""
        ...

    def save_snapshot(
        self, name: str, worker_id: str, stats: Mapping[str, VariantStats], *, now: float
    ) -> None:
        """Replace one worker's cumulative per-variant stats."""
        ...

    def load_snapshot(self, name: str) -> dict[str, VariantStats]:
        """Every worker's latest stats, merged per variant."""
        ...

    def acquire_lease(self, name: str, holder: str, *, now: float, ttl_s: float) -> bool:
        """Take or renew the right to step this rollout until ``now + ttl_s``; False if another
        holder's lease has not expired."""
        ...

    def save_joins(self, name: str, joins: Sequence[tuple[str, str]], *, now: float) -> None:
        """Remember which variant answered each request id; an id already stored keeps its first."""
        ...

    def claim_outcome(
        self,
        name: str,
        request_id: str,
        variant: str | None,
        outcome: Mapping[str, Any],
        *,
        now: float,
    ) -> tuple[str | None, dict[str, Any] | None]:
        """Record a request's outcome once, whichever gateway receives it.

        ``variant`` (if this gateway knows it) is stored first when the join is not stored yet.
        Returns the variant that answered (None: the id is unknown) and the outcome stored before
        this call (None: this call stored it, so the caller counts it).
        """
        ...

    def prune_joins(self, name: str, *, keep: int) -> None:
        """Keep only the ``keep`` newest joins of the deployment."""
        ...

    def save_captures(self, name: str, rows: Sequence[CapturedRequest]) -> None:
        """Append captured requests of the deployment (each gets the next id)."""
        ...

    def captures(self, name: str, *, limit: int | None = None) -> list[CapturedRequest]:
        """The deployment's newest ``limit`` captured requests (all when None), oldest first."""
        ...

    def prune_captures(self, name: str, *, keep: int) -> None:
        """Keep only the ``keep`` newest captured requests of the deployment."""
        ...

    def close(self) -> None: ...


def default_store_url(home: Path) -> str:
    """The SQLite file under lockgate's home directory."""
    return f"sqlite:///{home / 'rollouts.db'}"


def _finite(numbers: Mapping[str, float]) -> dict[str, float | None]:
    """JSON has no infinity or NaN (Postgres refuses them): store those as null."""
    return {k: (float(v) if math.isfinite(v) else None) for k, v in numbers.items()}


def changed_variants(old: DeploymentSpec, new: DeploymentSpec) -> frozenset[str]:
    """The variants of ``new`` whose counters cannot carry over from ``old``: a new model URI, or
    a name ``old`` did not have (and every variant ``old`` had that ``new`` drops)."""
    kept = {name for name, uri in new.variants.items() if old.variants.get(name) == uri}
    return frozenset(set(old.variants) | set(new.variants)) - kept


def _merge(pairs: Iterable[tuple[str, VariantStats]]) -> dict[str, VariantStats]:
    merged: dict[str, VariantStats] = {}
    for variant, stats in pairs:
        if variant in merged:
            merged[variant].merge(stats)
        else:
            merged[variant] = stats
    return merged


def _check_ttl(ttl_s: float) -> None:
    if not ttl_s > 0:
        raise ValidationError(f"lease ttl {ttl_s} s is not positive", hint="e.g. ttl_s=10")


def _missing(name: str) -> NotFound:
    return NotFound(f"deployment '{name}' does not exist", hint="create it first, or check the name")


def _taken(name: str) -> Conflict:
    return Conflict(
        f"deployment '{name}' already exists",
        hint="pick another name, or update the existing deployment",
    )


def _stale(name: str, expected: int, current: int) -> Conflict:
    return Conflict(
        f"deployment '{name}' is at version {current}, not {expected}: another writer stepped it",
        hint="re-read the deployment and step again from its current state",
        detail={"expected_version": expected, "current_version": current},
    )


class InMemoryStore:
    """The same contract as :class:`SqlStore`, in dicts behind a lock (state round-trips through
    JSON-able dicts, as it would through the database)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Any]] = {}
        self._events: list[AuditEvent] = []
        self._snapshots: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._joins: dict[str, dict[str, list[Any]]] = {}  # request id -> [variant, at, outcome]
        self._captures: dict[str, list[CapturedRequest]] = {}
        self._capture_ids = 0

    def close(self) -> None:
        """Nothing to release."""

    def create_deployment(self, spec: DeploymentSpec, state: RolloutState, *, now: float) -> Deployment:
        with self._lock:
            if spec.name in self._rows:
                raise _taken(spec.name)
            self._rows[spec.name] = {
                "name": spec.name,
                "spec": spec.to_dict(),
                "state": state.to_dict(),
                "version": 1,
                "created_at": now,
                "updated_at": now,
                "lease_holder": None,
                "lease_expires_at": None,
            }
            return self._deployment(spec.name)

    def get_deployment(self, name: str) -> Deployment:
        with self._lock:
            return self._deployment(name)

    def list_deployments(self) -> list[Deployment]:
        with self._lock:
            return [self._deployment(name) for name in sorted(self._rows)]

    def save_state(
        self,
        name: str,
        state: RolloutState,
        *,
        expected_version: int,
        now: float,
        events: Sequence[RecordEvent] = (),
    ) -> Deployment:
        with self._lock:
            row = self._row(name)
            if row["version"] != expected_version:
                raise _stale(name, expected_version, row["version"])
            row.update(state=state.to_dict(), version=row["version"] + 1, updated_at=now)
            self._append(name, events)
            return self._deployment(name)

    def replace_spec(
        self,
        spec: DeploymentSpec,
        state: RolloutState,
        *,
        expected_version: int,
        now: float,
        events: Sequence[RecordEvent] = (),
    ) -> Deployment:
        with self._lock:
            row = self._row(spec.name)
            if row["version"] != expected_version:
                raise _stale(spec.name, expected_version, row["version"])
            stale = changed_variants(parse_spec(row["spec"]), spec)
            for key, by_variant in self._snapshots.items():
                if key[0] == spec.name:
                    self._snapshots[key] = {v: d for v, d in by_variant.items() if v not in stale}
            row.update(spec=spec.to_dict(), state=state.to_dict(), version=row["version"] + 1, updated_at=now)
            self._append(spec.name, events)
            return self._deployment(spec.name)

    def append_events(self, name: str, events: Sequence[RecordEvent]) -> None:
        with self._lock:
            self._row(name)
            self._append(name, events)

    def events(self, name: str, *, after_id: int = 0, limit: int | None = None) -> list[AuditEvent]:
        with self._lock:
            self._row(name)
            found = [e for e in self._events if e.deployment == name and e.id > after_id]
            return found if limit is None else found[:limit]

    def save_snapshot(
        self, name: str, worker_id: str, stats: Mapping[str, VariantStats], *, now: float
    ) -> None:
        with self._lock:
            self._row(name)
            self._snapshots[(name, worker_id)] = {k: v.to_dict() for k, v in stats.items()}

    def load_snapshot(self, name: str) -> dict[str, VariantStats]:
        with self._lock:
            self._row(name)
            pairs = [
                (variant, VariantStats.from_dict(data))
                for (deployment, _), by_variant in sorted(self._snapshots.items())
                if deployment == name
                for variant, data in by_variant.items()
            ]
        return _merge(pairs)

    def save_joins(self, name: str, joins: Sequence[tuple[str, str]], *, now: float) -> None:
        with self._lock:
            self._row(name)
            stored = self._joins.setdefault(name, {})
            for request_id, variant in joins:
                stored.setdefault(request_id, [variant, now, None])

    def claim_outcome(
        self,
        name: str,
        request_id: str,
        variant: str | None,
        outcome: Mapping[str, Any],
        *,
        now: float,
    ) -> tuple[str | None, dict[str, Any] | None]:
        with self._lock:
            self._row(name)
            stored = self._joins.setdefault(name, {})
            if request_id not in stored:
                if variant is None:
                    return None, None
                stored[request_id] = [variant, now, None]
            row = stored[request_id]
            if row[2] is not None:
                return row[0], dict(row[2])
            row[2] = dict(outcome)
            return row[0], None

    def prune_joins(self, name: str, *, keep: int) -> None:
        with self._lock:
            stored = self._joins.get(name, {})
            if len(stored) > keep:
                newest = sorted(stored.items(), key=lambda item: item[1][1])[-keep:] if keep else []
                self._joins[name] = dict(newest)

    def save_captures(self, name: str, rows: Sequence[CapturedRequest]) -> None:
        with self._lock:
            self._row(name)
            stored = self._captures.setdefault(name, [])
            for row in rows:
                self._capture_ids += 1
                # through JSON, as the database would store it
                stored.append(
                    replace(
                        row,
                        deployment=name,
                        id=self._capture_ids,
                        inputs=json.loads(json.dumps(row.inputs)),
                        outputs=None if row.outputs is None else json.loads(json.dumps(row.outputs)),
                    )
                )

    def captures(self, name: str, *, limit: int | None = None) -> list[CapturedRequest]:
        with self._lock:
            self._row(name)
            stored = self._captures.get(name, [])
            return list(stored if limit is None else stored[-limit:] if limit > 0 else [])

    def prune_captures(self, name: str, *, keep: int) -> None:
        with self._lock:
            stored = self._captures.get(name, [])
            if len(stored) > keep:
                self._captures[name] = stored[-keep:] if keep > 0 else []

    def acquire_lease(self, name: str, holder: str, *, now: float, ttl_s: float) -> bool:
        _check_ttl(ttl_s)
        with self._lock:
            row = self._row(name)
            current, expires = row["lease_holder"], row["lease_expires_at"]
            if current not in (None, holder) and expires is not None and expires > now:
                return False
            row.update(lease_holder=holder, lease_expires_at=now + ttl_s)
            return True

    def _row(self, name: str) -> dict[str, Any]:
        if name not in self._rows:
            raise _missing(name)
        return self._rows[name]

    def _deployment(self, name: str) -> Deployment:
        row = self._row(name)
        return Deployment(
            name=name,
            spec=parse_spec(row["spec"]),
            state=RolloutState.from_dict(json.loads(json.dumps(row["state"]))),
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def _append(self, name: str, events: Sequence[RecordEvent]) -> None:
        for event in events:
            self._events.append(
                AuditEvent(
                    id=len(self._events) + 1,
                    deployment=name,
                    at=event.at,
                    actor=event.actor,
                    action=event.action,
                    reason=event.reason,
                    from_phase=event.from_phase,
                    to_phase=event.to_phase,
                    numbers=_finite(event.numbers),
                )
            )
