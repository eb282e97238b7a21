from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lockgate.cli.output import parse_rate
from lockgate.errors import UserError

Cli = Callable[..., tuple[int, str, str]]


@pytest.mark.parametrize(
    ("text", "per_s"), [("200/s", 200.0), ("12000/min", 200.0), ("7200/h", 2.0), ("5", 5.0)]
)
def testparse_rate(text: str, per_s: float) -> None:
    assert parse_rate(text) == pytest.approx(per_s)


@pytest.mark.parametrize("text", ["fast", "0/s", "-3/s", "10/week", "nan/s"])
def test_parse_traffic_rejects(text: str) -> None:
    with pytest.raises(UserError, match="is not a request rate"):
        parse_rate(text)


def test_plan_test_matches_the_power_function(cli: Cli) -> None:
    from lockgate.stats.power import sample_size_two_proportions

    code, out, _ = cli("plan-test", "--baseline", "0.10", "--mde", "0.01", "--traffic", "200/s")
    assert code == 0
    n = sample_size_two_proportions(0.10, 0.01, alpha=0.05, power=0.8)
    assert f"{n:,}" in out
    assert f"{2 * n:,}" in out
    assert "min at 200 requests/s" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--baseline", "1.5", "--mde", "0.01"],
        ["--baseline", "0.1", "--mde", "0.01", "--alpha", "2"],
        ["--baseline", "0.1", "--mde", "0.01", "--split", "1"],
        ["--baseline", "0.1", "--mde", "0.01", "--traffic", "lots"],
    ],
)
def test_plan_test_bad_input_exits_2(cli: Cli, args: list[str]) -> None:
    code, _, err = cli("plan-test", *args)
    assert code == 2
    assert err.startswith("error:") and "Traceback" not in err


def test_simulate_stats_aa_keeps_lockgate_within_alpha(cli: Cli) -> None:
    code, out, _ = cli("simulate-stats", "--runs", "400", "--looks", "50")
    assert code == 0
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines() if "│" in line
    }
    assert float(rows["lockgate"]) <= 0.05 + 3 * (0.05 * 0.95 / 400) ** 0.5
    assert float(rows["naive"]) > 0.1  # peeking inflates false alarms: the comparison can fail


def test_simulate_rolls_back_a_bad_canary_with_the_specs_own_policy(cli: Cli) -> None:
    code, out, _ = cli("simulate", "--candidate-error-rate", "0.05")
    assert code == 0
    assert "errors is worse" in out and "always-valid interval" in out
    assert "final phase rolled_back" in out
    code, out, _ = cli("simulate")
    assert code == 0 and "final phase promoted" in out and "non-inferior" in out


def test_simulate_takes_heavy_tails_a_slow_candidate_and_the_naive_policy(cli: Cli) -> None:
    code, out, _ = cli("simulate", "--latency-shape", "pareto", "--candidate-latency-ms", "15")
    assert code == 0 and "latency is worse" in out and "final phase rolled_back" in out
    code, out, _ = cli("simulate", "--policy", "threshold", "--requests", "20000", "--users", "500")
    assert code == 0 and "final phase" in out
    code, _, err = cli("simulate", "--policy", "bayes")
    assert code == 2 and "threshold or spec" in err
    code, _, err = cli("simulate", "--latency-shape", "uniform")
    assert code == 2 and "lognormal, pareto or bimodal" in err


def test_simulate_an_ab_test_decided_by_late_conversions(cli: Cli) -> None:
    code, out, _ = cli(
        "simulate",
        "--spec",
        "examples/specs/ab_conversions.yaml",
        "--baseline-conversion-rate",
        "0.1",
        "--candidate-conversion-rate",
        "0.13",
        "--outcome-delay-s",
        "30",
        "--rate",
        "1000",
    )
    assert code == 0 and "primary is better" in out and "final phase promoted" in out


def test_plan_test_says_when_a_spec_has_its_evidence_at_a_traffic(cli: Cli) -> None:
    code, out, _ = cli("plan-test", "--spec", "examples/specs/canary.yaml", "--traffic", "1000/s")
    assert code == 0 and "evidence after" in out and "promoted after about 20.0 min" in out
    code, out, _ = cli("plan-test", "--spec", "examples/specs/canary.yaml", "--traffic", "100/s")
    assert code == 0 and "rollback (no evidence)" in out and "not enough traffic" in out
    code, _, err = cli("plan-test", "--spec", "examples/specs/canary.yaml")
    assert code == 2 and "--spec needs --traffic" in err
    code, _, err = cli("plan-test")
    assert code == 2 and "--baseline and --mde" in err


def test_a_bad_margin_in_a_spec_is_exit_code_2_naming_the_key_and_the_fix(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        Path("examples/specs/canary.yaml").read_text()
        + "analysis:\n  guardrails:\n    errors: {max_increase: {percent: 1}}\n"
    )
    code, _, err = cli("plan-test", "--spec", str(spec), "--traffic", "100/s")
    assert code == 2
    assert "analysis.guardrails.errors.max_increase.percent: is not a known key" in err
    assert "absolute_pp, relative" in err
