"""The commands that draw: ``simulate``, ``simulate-stats`` and ``plan --cost`` with ``--plot FILE``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., tuple[int, str, str]]
SPECS = Path(__file__).parents[2] / "examples" / "specs"


def _texts(path: Path) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]+)</text>", path.read_text(encoding="utf-8"))


def test_simulate_plot_draws_the_rollback(cli: Cli, tmp_path: Path) -> None:
    plot = tmp_path / "rollout.svg"
    code, out, err = cli("simulate", "--candidate-error-rate", "0.05", "--plot", str(plot))
    assert code == 0, err
    assert f"plot written to {plot}" in out.replace("\n", "")
    assert "rollback" in _texts(plot) and "start" in _texts(plot)


def test_simulate_stats_plot_draws_each_decider(cli: Cli, tmp_path: Path) -> None:
    plot = tmp_path / "peeking.png"
    code, _, err = cli("simulate-stats", "--runs", "100", "--looks", "20", "--plot", str(plot))
    assert code == 0, err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_cost_plot_draws_every_strategy(cli: Cli, tmp_path: Path, lockgate_home: Path) -> None:
    plot = tmp_path / "cost.svg"
    args = ["--price", "2", "--traffic", "200/s", "--throughput", "50", "--plot", str(plot)]
    code, _, err = cli("plan", "--cost", str(SPECS / "canary.yaml"), *args)
    assert code == 0, err
    assert {"blue_green", "canary", "rolling", "shadow", "ab", "direct"} <= set(_texts(plot))


@pytest.mark.parametrize(
    "args",
    [
        ["simulate"],
        ["simulate-stats", "--runs", "10", "--looks", "2"],
        [
            "plan",
            "--cost",
            str(SPECS / "canary.yaml"),
            "--price",
            "2",
            "--traffic",
            "9/s",
            "--throughput",
            "5",
        ],
    ],
)
def test_a_plot_file_that_is_not_svg_or_png_exits_2(cli: Cli, tmp_path: Path, args: list[str]) -> None:
    code, _, err = cli(*args, "--plot", str(tmp_path / "figure.pdf"))
    assert code == 2
    assert "must end in .svg or .png" in err and "Traceback" not in err
