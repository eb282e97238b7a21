from __future__ import annotations

from lockgate.monitor.timeline import TimelinePoint, WeightTimeline


def test_a_point_is_kept_only_when_the_phase_or_weights_change() -> None:
    timeline = WeightTimeline()
    timeline.record("churn", 1.0, "pending", {"stable": 100.0})
    timeline.record("churn", 2.0, "pending", {"stable": 100.0})
    timeline.record("churn", 3.0, "stepping", {"stable": 80.0, "next": 20.0})
    timeline.record("churn", 4.0, "stepping", {"stable": 80.0, "next": 20.0})
    assert timeline.points("churn") == [
        TimelinePoint(1.0, "pending", {"stable": 100.0}),
        TimelinePoint(3.0, "stepping", {"stable": 80.0, "next": 20.0}),
    ]
    assert timeline.points("other") == []


def test_the_oldest_points_are_dropped_beyond_the_cap() -> None:
    timeline = WeightTimeline(max_points=3)
    for i in range(10):
        timeline.record("churn", float(i), "stepping", {"next": float(i)})
    assert [p.at for p in timeline.points("churn")] == [7.0, 8.0, 9.0]
    assert timeline.points("churn")[-1].to_dict() == {
        "at": 9.0,
        "phase": "stepping",
        "weights_percent": {"next": 9.0},
    }
