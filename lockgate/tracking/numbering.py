"""Numbering dataset versions when several people snapshot one dataset at once, with no lock service.

Only MLflow run tags are shared, so a writer claims a number, checks that nobody else claims it, and
only then commits it:

1. its run starts with the claim tag ``pending`` and no version tag;
2. ``candidate`` = the highest committed version + 1 (:func:`next_candidate`);
3. it tags its run ``claim = candidate`` (with the time of the claim);
4. it lists the dataset's runs again; if any *other* run claims or holds ``candidate``
   (:func:`has_rival`), it sets its claim back to ``pending``, waits a random backoff and goes to 2;
5. otherwise the number is its own: it writes the manifest, then commits by tagging
   ``version = candidate``.

Why at most one writer commits a number: a writer tags its claim *before* it looks. Take two writers
that both claimed N; the later of the two claim writes came after the earlier one, and the later
writer's look came after its own write, so it sees the earlier writer's claim and backs off, unless
that writer had already given the claim up, and then that one does not commit N. Either way only one
of them commits N. A committed run keeps its claim and version tags for good, so every later writer
sees N taken and counts from it; numbers come out 1, 2, 3... without gaps because a candidate is always
the highest committed number + 1.

A writer that dies mid-claim (killed, or a server that stopped answering) would block its number for
ever, so a claim counts only while its run is RUNNING and for ``CLAIM_TTL_S`` after it was made; the
writer itself never commits later than half of that after its claim, so a claim that has run out
belongs to nobody (clocks of the machines must agree to within ``CLAIM_TTL_S / 2``).

Readers see only runs with a numeric ``version`` tag, which exists only once committed; runs written
before this protocol had only that tag, so they read as committed, and an older lockgate reading a
newer store never meets a run in the middle of a claim.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lockgate.errors import Conflict

if TYPE_CHECKING:
    from mlflow.entities import Run

    from lockgate.tracking.connection import Connection

__all__ = [
    "CLAIMED_MS_TAG",
    "CLAIM_TAG",
    "CLAIM_TTL_S",
    "PENDING",
    "VERSION_TAG",
    "Claim",
    "claim_backoff_s",
    "claim_of",
    "committed_version",
    "has_rival",
    "is_claim_fresh",
    "next_candidate",
    "number_run",
]

VERSION_TAG = "lockgate.dataset.version"
CLAIM_TAG = "lockgate.dataset.claim"
CLAIMED_MS_TAG = "lockgate.dataset.claimed_ms"
PENDING = "pending"
CLAIM_TTL_S = 120.0
_LIVE_STATUSES = frozenset({"RUNNING", "SCHEDULED"})
_MIN_SLOT_S = 0.02
_MAX_BACKOFF_S = 30.0
DEADLINE_S = 600.0


@dataclass(frozen=True)
class Claim:
    """What one run of a dataset says about its number: committed ``version``, or a ``claimed``
    candidate made at ``claimed_ms`` by a run that is still ``is_live``."""

    run_id: str
    version: int | None
    claimed: int | None
    claimed_ms: int
    is_live: bool


def _number(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    return int(value)


def committed_version(tags: Mapping[str, str]) -> int | None:
    """The run's committed version number, or None while it has none (pending, or not a version)."""
    return _number(tags.get(VERSION_TAG))


def claim_of(run_id: str, tags: Mapping[str, str], status: str) -> Claim:
    """One run's :class:`Claim`, from its tags and its MLflow status."""
    return Claim(
        run_id=run_id,
        version=committed_version(tags),
        claimed=_number(tags.get(CLAIM_TAG)),
        claimed_ms=_number(tags.get(CLAIMED_MS_TAG)) or 0,
        is_live=status in _LIVE_STATUSES,
    )


def next_candidate(claims: Iterable[Claim]) -> int:
    """The number to try: the highest committed version + 1 (1 for the first)."""
    return max((c.version for c in claims if c.version is not None), default=0) + 1


def has_rival(
    claims: Iterable[Claim], run_id: str, candidate: int, now_ms: int, ttl_s: float = CLAIM_TTL_S
) -> bool:
    """Whether a run other than ``run_id`` holds ``candidate`` (committed) or claims it (a live claim
    made less than ``ttl_s`` before ``now_ms``)."""
    for claim in claims:
        if claim.run_id == run_id:
            continue
        if claim.version == candidate:
            return True
        is_fresh = now_ms - claim.claimed_ms < ttl_s * 1000
        if claim.claimed == candidate and claim.version is None and claim.is_live and is_fresh:
            return True
    return False


def is_claim_fresh(claimed_s: float, now_s: float, ttl_s: float = CLAIM_TTL_S) -> bool:
    """Whether a writer may still commit the number it claimed at ``claimed_s`` (its own clock):
    within half the time others count the claim, so none of them has taken it for a dead one's."""
    return now_s - claimed_s < ttl_s / 2


def claim_backoff_s(attempt: int, slot_s: float, rng: random.Random) -> float:
    """A random wait before trying again ("full jitter"), in units of ``slot_s`` (how long the last
    try took, so a slow server gets proportionally longer waits), doubling with each ``attempt`` up to
    32 slots or ``_MAX_BACKOFF_S``: writers that collided spread out instead of colliding again."""
    slot_s = max(slot_s, _MIN_SLOT_S)
    return rng.uniform(0.0, min(_MAX_BACKOFF_S, slot_s * 2.0 ** min(attempt + 1, 5)))


# -- MLflow shell ----------------------------------------------------------------------------------
def number_run(
    conn: Connection,
    run_id: str,
    list_runs: Callable[[], list[Run]],
    write_manifest: Callable[[int], None],
    *,
    rng: random.Random | None = None,
    deadline_s: float = DEADLINE_S,
) -> int:
    """Claim the next free version number for run ``run_id`` (``list_runs`` gives every run of the
    dataset, committed or not), check it, call ``write_manifest(number)``, then commit the number."""
    rng = rng or random.Random()  # noqa: S311 - jitter for a backoff, not a secret
    started = time.monotonic()
    for attempt in itertools.count():
        began = time.monotonic()
        claims = _claims(list_runs())
        candidate = next_candidate(claims)
        # another writer already claims the next number: let it finish rather than collide with it
        if not has_rival(claims, run_id, candidate, _now_ms()):
            claimed_at = time.monotonic()
            _set_tags(conn, run_id, {CLAIM_TAG: str(candidate), CLAIMED_MS_TAG: str(_now_ms())})
            if not has_rival(_claims(list_runs()), run_id, candidate, _now_ms()):
                write_manifest(candidate)
                if is_claim_fresh(claimed_at, time.monotonic()):
                    conn.client.set_tag(run_id, VERSION_TAG, str(candidate))
                    return candidate
            conn.client.set_tag(run_id, CLAIM_TAG, PENDING)
        if time.monotonic() - started > deadline_s:
            break
        time.sleep(claim_backoff_s(attempt, time.monotonic() - began, rng))
    raise Conflict(
        f"could not number a new version within {deadline_s:.0f} s: other snapshots of the same "
        "dataset kept taking the same number",
        hint="run the snapshot again",
    )


def _claims(runs: list[Run]) -> list[Claim]:
    return [claim_of(r.info.run_id, r.data.tags, r.info.status) for r in runs]


def _set_tags(conn: Connection, run_id: str, tags: Mapping[str, str]) -> None:
    """Several tags in one request, so a claim and its time arrive together."""
    from mlflow.entities import RunTag

    conn.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()], synchronous=True)


def _now_ms() -> int:
    return int(time.time() * 1000)
