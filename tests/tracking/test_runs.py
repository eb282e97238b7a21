from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lockgate.errors import NotFound, UserError
from lockgate.tracking.connection import connect
from lockgate.tracking.runs import (
    RunSummary,
    compare_rows,
    diff_runs,
    get_run,
    is_lower_better,
    list_runs,
    plot_metrics,
    summarize,
)


def _run(run_id: str, params: dict[str, str], metrics: dict[str, float], **tags: str) -> RunSummary:
    return RunSummary(run_id, run_id, "1", "FINISHED", 0, 1000, params, metrics, tags)


def test_direction_from_name() -> None:
    assert is_lower_better("val_loss")
    assert is_lower_better("rmse")
    assert is_lower_better("latency_p99_ms")
    assert not is_lower_better("accuracy")
    assert not is_lower_better("roc_auc")


def test_compare_marks_changes_and_best() -> None:
    a = _run("a" * 32, {"C": "1", "seed": "1"}, {"accuracy": 0.9, "loss": 0.3})
    b = _run("b" * 32, {"C": "2", "seed": "1"}, {"accuracy": 0.95, "loss": 0.2})
    c = _run("c" * 32, {"C": "3", "seed": "1"}, {"accuracy": 0.95, "loss": 0.5})
    rows = {(r.kind, r.key): r for r in compare_rows([a, b, c])}
    assert rows[("param", "C")].is_changed
    assert not rows[("param", "seed")].is_changed
    assert rows[("metric", "accuracy")].best == (1, 2)  # ties are both best
    assert rows[("metric", "loss")].best == (1,)  # lower is better
    only = compare_rows([a, b, c], only_changed=True)
    assert ("param", "seed") not in {(r.kind, r.key) for r in only}


def test_compare_with_missing_values() -> None:
    a = _run("a" * 32, {}, {"accuracy": 0.9})
    b = _run("b" * 32, {"C": "1"}, {})
    rows = {(r.kind, r.key): r for r in compare_rows([a, b])}
    assert rows[("param", "C")].values == (None, "1")
    assert rows[("metric", "accuracy")].best == ()


def test_diff_runs_sections() -> None:
    a = _run(
        "a" * 32,
        {"C": "1"},
        {"acc": 0.9},
        **{"lockgate.git.commit": "abc", "lockgate.python": "3.11.7", "lockgate.datasets": "[]"},
    )
    b = _run(
        "b" * 32,
        {"C": "2"},
        {"acc": 0.9},
        **{
            "lockgate.git.commit": "def",
            "lockgate.python": "3.11.7",
            "lockgate.datasets": '[{"name": "d", "version": 2, "digest": "ff", "context": "train"}]',
        },
    )
    d = diff_runs(a, b, ["numpy==1", "x==1"], ["numpy==2", "x==1"])
    assert d.params == {"C": ("1", "2")}
    assert d.metrics == {}
    assert d.code == {"commit": ("abc", "def")}
    assert d.environment == {}
    assert list(d.data) == ["d (train)"]
    assert d.packages_added == ("numpy==2",) and d.packages_removed == ("numpy==1",)
    assert not d.is_identical
    assert diff_runs(a, a).is_identical


@pytest.mark.integration
def test_get_run_by_prefix_and_errors(mlflow_home: Path, trained_run: Callable[..., str]) -> None:
    conn = connect()
    run_id = trained_run()
    assert get_run(conn, run_id[:8]).info.run_id == run_id
    assert get_run(conn, run_id).info.run_id == run_id
    with pytest.raises(UserError, match="is not a run id"):
        get_run(conn, "zz-not-hex")
    with pytest.raises(NotFound, match="no run id starts with"):
        get_run(conn, "ffffff" if not run_id.startswith("ffffff") else "eeeeee")
    with pytest.raises(NotFound, match="not found"):
        get_run(conn, "0" * 32)


@pytest.mark.integration
def test_list_and_plot(mlflow_home: Path, tmp_path: Path, trained_run: Callable[..., str]) -> None:
    conn = connect()
    first, second = trained_run("one"), trained_run("two", c=0.1)
    runs = list_runs(conn, limit=50)
    ids = [r.run_id for r in runs]
    assert ids.index(second) < ids.index(first)  # newest first
    with pytest.raises(NotFound, match="experiment 'nope' does not exist"):
        list_runs(conn, experiment="nope")
    png = plot_metrics(
        conn, [summarize(get_run(conn, first)), summarize(get_run(conn, second))], tmp_path / "c.png"
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UserError, match=r"must end in \.png"):
        plot_metrics(conn, [summarize(get_run(conn, first))], tmp_path / "c.jpg")
