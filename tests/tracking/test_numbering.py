"""The version-numbering protocol: its pure parts, and a simulation of many writers interleaved."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.tracking.numbering import (
    CLAIM_TAG,
    CLAIM_TTL_S,
    CLAIMED_MS_TAG,
    PENDING,
    VERSION_TAG,
    Claim,
    claim_backoff_s,
    claim_of,
    committed_version,
    has_rival,
    is_claim_fresh,
    next_candidate,
)

NOW_MS = 1_000_000_000


def test_old_runs_read_as_committed_and_claims_as_pending() -> None:
    assert committed_version({VERSION_TAG: "3"}) == 3  # a run written before the protocol
    assert committed_version({CLAIM_TAG: "4"}) is None  # claimed, not committed
    assert committed_version({VERSION_TAG: PENDING}) is None
    claim = claim_of("r", {CLAIM_TAG: "4", CLAIMED_MS_TAG: "17"}, "RUNNING")
    assert claim == Claim("r", None, 4, 17, is_live=True)
    assert not claim_of("r", {CLAIM_TAG: PENDING}, "FAILED").is_live


def test_next_candidate_counts_committed_versions_only() -> None:
    assert next_candidate([]) == 1
    claims = [Claim("a", 1, 1, 0, False), Claim("b", 2, 2, 0, False), Claim("c", None, 3, NOW_MS, True)]
    assert next_candidate(claims) == 3


def test_a_rival_holds_or_claims_the_number_and_a_dead_claim_does_not_count() -> None:
    mine = Claim("me", None, 3, NOW_MS, True)
    assert not has_rival([mine], "me", 3, NOW_MS)
    assert has_rival([mine, Claim("old", 3, None, 0, False)], "me", 3, NOW_MS)  # committed, pre-protocol
    assert has_rival([mine, Claim("b", None, 3, NOW_MS - 5, True)], "me", 3, NOW_MS)
    assert not has_rival([mine, Claim("b", None, 4, NOW_MS, True)], "me", 3, NOW_MS)
    assert not has_rival([mine, Claim("crashed", None, 3, NOW_MS, False)], "me", 3, NOW_MS)
    stale = NOW_MS - int(CLAIM_TTL_S * 1000) - 1
    assert not has_rival([mine, Claim("killed", None, 3, stale, True)], "me", 3, NOW_MS)


def test_a_writer_commits_only_while_its_claim_is_fresh() -> None:
    assert is_claim_fresh(100.0, 100.0 + CLAIM_TTL_S / 2 - 0.1)
    assert not is_claim_fresh(100.0, 100.0 + CLAIM_TTL_S / 2)


def test_backoff_is_random_grows_with_the_slot_and_is_bounded() -> None:
    rng = random.Random(1)
    waits = [claim_backoff_s(attempt, 0.01, rng) for attempt in range(40)]
    assert all(0.0 <= w <= 0.02 * 32 for w in waits)
    assert len(set(waits)) == len(waits)
    slow = [claim_backoff_s(3, 2.0, rng) for _ in range(200)]
    assert max(slow) > 10 and all(w <= 30.0 for w in slow)


# -- a simulated store and writers, one atomic store operation per step ---------------------------
@dataclass
class Store:
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    now_ms: int = NOW_MS

    def claims(self) -> list[Claim]:
        return [claim_of(run, tags, self.status[run]) for run, tags in self.tags.items()]


@dataclass
class Writer:
    run_id: str
    step: str = "list"
    candidate: int = 0
    claimed_ms: int = 0
    committed: int | None = None

    def advance(self, store: Store) -> None:
        """One step of ``number_run``: list (again while another writer claims the candidate) → claim →
        look → commit, or reset and list again."""
        if self.step == "list":
            claims = store.claims()
            self.candidate = next_candidate(claims)
            if not has_rival(claims, self.run_id, self.candidate, store.now_ms):
                self.step = "claim"  # else: wait for the claimant and list again
        elif self.step == "claim":
            self.claimed_ms = store.now_ms
            store.tags[self.run_id].update(
                {CLAIM_TAG: str(self.candidate), CLAIMED_MS_TAG: str(store.now_ms)}
            )
            self.step = "look"
        elif self.step == "look":
            rival = has_rival(store.claims(), self.run_id, self.candidate, store.now_ms)
            self.step = "reset" if rival else "commit"
        elif self.step == "commit" and not is_claim_fresh(self.claimed_ms / 1000, store.now_ms / 1000):
            self.step = "reset"  # too late: others may have taken the claim for a dead writer's
        elif self.step == "commit":
            store.tags[self.run_id][VERSION_TAG] = str(self.candidate)
            store.status[self.run_id] = "FINISHED"
            self.committed = self.candidate
            self.step = "done"
        elif self.step == "reset":
            store.tags[self.run_id][CLAIM_TAG] = PENDING
            self.step = "list"


def _simulate(schedule: list[int], writers: int, crashed: int, committed_before: int) -> Store:
    store = Store()
    for n in range(1, committed_before + 1):  # versions written by an older lockgate: a version tag only
        store.tags[f"old-{n}"] = {VERSION_TAG: str(n)}
        store.status[f"old-{n}"] = "FINISHED"
    crowd = [Writer(f"w{i}") for i in range(writers + crashed)]
    for writer in crowd:
        store.tags[writer.run_id] = {CLAIM_TAG: PENDING}
        store.status[writer.run_id] = "RUNNING"
    # the crashed writers die right after claiming: their runs stay RUNNING, their claims stay put
    for writer in crowd[writers:]:
        writer.advance(store)
        writer.advance(store)
    live = crowd[:writers]
    for pick in schedule:  # an adversarial interleaving
        store.now_ms += 7
        writer = live[pick % writers]
        if writer.step != "done":
            writer.advance(store)
    store.now_ms += int(CLAIM_TTL_S * 1000)  # the crashed writers' claims run out
    for writer in live:  # then each finishes alone
        for _ in range(100):
            if writer.step == "done":
                break
            writer.advance(store)
    return store


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=7), max_size=200),
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=0, max_value=2),
    st.integers(min_value=0, max_value=3),
)
def test_any_interleaving_numbers_every_writer_once_without_gaps(
    schedule: list[int], writers: int, crashed: int, committed_before: int
) -> None:
    store = _simulate(schedule, writers, crashed, committed_before)
    versions = [c.version for c in store.claims() if c.version is not None]
    assert sorted(versions) == list(range(1, committed_before + writers + 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=7), max_size=120), st.integers(min_value=2, max_value=8))
def test_no_interleaving_commits_one_number_twice(schedule: list[int], writers: int) -> None:
    store = Store()
    crowd = [Writer(f"w{i}") for i in range(writers)]
    for writer in crowd:
        store.tags[writer.run_id] = {CLAIM_TAG: PENDING}
        store.status[writer.run_id] = "RUNNING"
    for pick in schedule:
        writer = crowd[pick % writers]
        if writer.step != "done":
            writer.advance(store)
        committed = [w.committed for w in crowd if w.committed is not None]
        assert len(committed) == len(set(committed))
        assert sorted(committed) == list(range(1, len(committed) + 1))
