"""The cache's decisions on plain digests: what changed decides what runs."""

from __future__ import annotations

from lockgate.pipeline.plan import Decision, StageRecord, decide, plan

RECORD = StageRecord("a1", code={"train.py": "c1"}, deps={"data.csv": "d1"}, outs={"model": "m1"})


def _decide(record: StageRecord | None = RECORD, **changes: object) -> Decision:
    now: dict[str, object] = {
        "action_sha256": "a1",
        "code": {"train.py": "c1"},
        "deps": {"data.csv": "d1"},
        "outs": {"model": "m1"},
    }
    now.update(changes)
    return decide("train", record, **now)  # type: ignore[arg-type]


def test_unchanged_digests_skip_the_stage() -> None:
    assert _decide() == Decision("train", False, "unchanged")


def test_each_kind_of_change_runs_the_stage_and_says_which() -> None:
    assert _decide(None).reason == "no successful run recorded"
    assert _decide(action_sha256="a2").reason == "its command or params changed"
    assert _decide(code={"train.py": "c2"}).reason == "code changed: train.py"
    assert _decide(deps={"data.csv": "d2"}).reason == "input changed: data.csv"
    assert _decide(deps={"data.csv": "d1", "extra.csv": "e"}).reason == "input changed: extra.csv"
    assert _decide(outs={"model": None}).reason == "output missing: model"
    assert _decide(outs={"model": "m2"}).reason == "output changed since it ran: model"
    assert _decide(is_forced=True).reason == "forced"
    assert _decide(is_always_run=True).reason == "always_run"


def test_the_plan_runs_what_depends_on_a_running_stage() -> None:
    stages = [("data", []), ("train", ["data.csv"]), ("report", ["notes.md"])]
    decisions = {
        "data": Decision("data", True, "input changed: raw.csv"),
        "train": Decision("train", False, "unchanged"),
        "report": Decision("report", False, "unchanged"),
    }
    planned = plan(stages, decisions, {"data.csv": "data"})
    assert [d.should_run for d in planned] == [True, True, False]
    assert planned[1].reason == "may run: its inputs come from data"


def test_records_round_trip() -> None:
    assert StageRecord.from_dict(RECORD.to_dict()) == RECORD
