"""``lockgate analyze DEPLOYMENT``: each variant against the baseline, with always-valid numbers.

Reads the counters of a running server's deployment (``GET /admin/deployments/{name}/stats``,
the same admin URL and token as ``lockgate rollout``) and computes in
:func:`lockgate.stats.analyze_variants`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from lockgate.cli.output import console
from lockgate.cli.rollout import NameArgument, TokenOption, UrlOption

if TYPE_CHECKING:  # the statistics load scipy: only the command itself needs them
    from lockgate.stats.analysis import Analysis

_VERDICT_STYLE = {"better": "bold green", "worse": "bold red", "worse: error rate": "bold red"}
_METRIC_WORDS = {"conversions": "conversion rate", "outcome": "outcome mean", "errors": "error rate"}


def _number(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def render_analysis(name: str, analysis: Analysis, phase: str) -> Group:
    """The analysis as a Rich table with a headline saying what was measured."""
    words = _METRIC_WORDS[analysis.metric]
    direction = "higher" if analysis.higher_is_better else "lower"
    headline = Text.assemble(
        (name, "bold"),
        f"  {phase}  metric: {words} ({direction} is better), alpha {analysis.alpha:g}, "
        f"mixing mde {analysis.mde:.3g}",
    )
    table = Table(show_edge=False)
    columns = (
        "variant",
        "requests",
        "error rate",
        "n",
        words,
        "lift",
        "rel. lift",
        f"{1 - analysis.alpha:.0%} CI of lift (always valid)",
        "p (always valid)",
        "error p",
        "verdict",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("variant", "verdict") else "right")
    for row in analysis.variants:
        interval = "-" if row.ci_low is None else f"[{row.ci_low:+.4g}, {row.ci_high:+.4g}]"
        table.add_row(
            row.variant + (" (baseline)" if row.is_baseline else ""),
            f"{row.requests:,}",
            f"{row.error_rate:.2%}",
            f"{row.n:,}",
            _number(row.mean),
            "-" if row.lift is None else f"{row.lift:+.4g}",
            "-" if row.relative_lift is None else f"{row.relative_lift:+.1%}",
            interval,
            _p(row.p_value),
            _p(row.error_p),
            Text(row.verdict, _VERDICT_STYLE.get(row.verdict, "")),
        )
    return Group(headline, table)


def analyze_command(
    name: NameArgument,
    metric: Annotated[
        str,
        typer.Option(
            help="auto (conversions, else outcome mean, else error rate), conversions, outcome, errors."
        ),
    ] = "auto",
    alpha: Annotated[float, typer.Option(help="False-positive rate, valid at every look.")] = 0.05,
    mde: Annotated[
        float | None,
        typer.Option(help="Effect size the test is tuned for (default: 10% of the baseline's rate or std)."),
    ] = None,
    lower_is_better: Annotated[
        bool, typer.Option("--lower-is-better", help="The metric should go down (a cost, a latency).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Each variant of a running deployment against its baseline: n, mean, lift, always-valid
    confidence interval and p-value, error rate, verdict.

    The metric comes from feedback (POST /v2/models/{name}/feedback): 0/1 labels give a conversion
    rate, numbers an outcome mean; without feedback the error rate is compared. The numbers stay
    valid however often you run this during a rollout.

    Example:  lockgate analyze churn --metric conversions
    """
    from lockgate.serving.client import AdminClient
    from lockgate.stats.accumulators import VariantStats
    from lockgate.stats.analysis import analyze_variants

    with AdminClient(url, token=token) as client:
        raw = client.stats(name)
    stats = {variant: VariantStats.from_dict(data) for variant, data in raw["variants"].items()}
    analysis = analyze_variants(
        stats,
        raw["baseline"],
        metric=metric,
        alpha=alpha,
        mde=mde,
        higher_is_better=False if lower_is_better else None,
    )
    if as_json:
        document: dict[str, Any] = {"name": name, "phase": raw["phase"], **analysis.to_dict()}
        print(json.dumps(document, indent=2))
        return
    console.print(render_analysis(name, analysis, raw["phase"]))
