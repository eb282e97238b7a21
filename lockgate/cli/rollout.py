"""``lockgate deploy`` and ``lockgate rollout ...``: drive a running server's rollouts.

Both talk to the admin API of ``lockgate serve`` (``--url``, default ``$LOCKGATE_URL`` or
http://127.0.0.1:8080) with the bearer token in ``$LOCKGATE_ADMIN_TOKEN`` (or ``--token``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from lockgate.cli.output import console, err_console
from lockgate.errors import UserError

app = typer.Typer(
    help="Drive a rollout on a running server: start, status, promote, pause, resume, rollback, history.",
    no_args_is_help=True,
)

UrlOption = Annotated[
    str | None, typer.Option("--url", help="The server (default $LOCKGATE_URL or http://127.0.0.1:8080).")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", help="Admin token (default $LOCKGATE_ADMIN_TOKEN).")
]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why: kept in the audit log.")]
ActorOption = Annotated[
    str | None, typer.Option("--actor", help="Who: kept in the audit log (default: $USER).")
]
NameArgument = Annotated[str, typer.Argument(help="The deployment's name.")]

_PHASE_STYLE = {
    "promoted": "bold green",
    "completed": "bold green",
    "rolled_back": "bold red",
    "halted": "bold red",
    "paused": "yellow",
}


def _is_settled(phase: str) -> bool:
    """Whether nothing changes without a person (the phase's own answer; imported late, so that
    `lockgate --help` does not load the rollout package)."""
    from lockgate.rollout.phases import Phase

    return Phase(phase).is_settled


def _client(url: str | None, token: str | None) -> Any:
    from lockgate.serving.client import AdminClient

    return AdminClient(url, token=token)


def _actor(actor: str | None) -> str:
    import getpass

    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _clock(at: float) -> str:
    """A time of day in this machine's time zone."""
    import time

    return time.strftime("%H:%M:%S", time.localtime(at))


_LLM_COLUMNS = (
    ("ttft p50 ms", "ttft_ms", "{:.1f}"),
    ("ttft p99 ms", "ttft_p99_ms", "{:.1f}"),
    ("inter-token ms", "inter_token_ms", "{:.1f}"),
    ("tokens/s", "output_tokens_per_s", "{:.1f}"),
    ("tokens/req", "tokens_per_request", "{:.1f}"),
    ("cost/1k tok", "cost_per_1k_tokens", "{:.4g}"),
    ("empty", "empty_answer_rate", "{:.2%}"),
    ("timeouts", "timeout_rate", "{:.2%}"),
    ("errors", "error_rate", "{:.2%}"),
)


def _llm_table(status: dict[str, Any]) -> Table | None:
    """The generative variants' LLM metrics (None when no variant generated text)."""
    rows = {name: v["llm"] for name, v in status["variants"].items() if v.get("llm")}
    if not rows:
        return None
    table = Table(show_edge=False, title="LLM", title_justify="left")
    table.add_column("variant")
    for header, _, _ in _LLM_COLUMNS:
        table.add_column(header, justify="right")
    for name, values in rows.items():
        cells = [fmt.format(values[key]) if key in values else "-" for _, key, fmt in _LLM_COLUMNS]
        table.add_row(name, *cells)
    return table


def render_status(status: dict[str, Any]) -> Group:
    """The status of a deployment as Rich renderables: a headline, the variants, the verdict."""
    phase = status["phase"]
    style = _PHASE_STYLE.get(phase, "bold cyan")
    headline = Text.assemble(
        (f"{status['name']}", "bold"),
        f"  {status['strategy']}  ",
        (phase, style),
        f"  stage {status['stage']}  ",
        (status.get("reason") or "", "dim"),
    )
    table = Table(show_edge=False)
    for column in ("variant", "model", "weight %", "requests", "errors", "error rate", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("variant", "model") else "right")
    for name, variant in status["variants"].items():
        role = " (baseline)" if name == status["baseline"] else " (candidate)"
        table.add_row(
            name + role,
            f"{variant['model_name']} v{variant['model_version']}",
            f"{variant['weight_percent']:g}",
            str(variant["requests"]),
            str(variant["errors"]),
            f"{variant['error_rate']:.2%}",
            _ms(variant["p50_ms"]),
            _ms(variant["p99_ms"]),
        )
    parts: list[Any] = [headline, table]
    llm = _llm_table(status)
    if llm is not None:
        parts.append(llm)
    if status.get("paused_until"):
        parts.append(Text(f"paused until {_clock(status['paused_until'])}, then it carries on by itself"))
    for name, variant in status["variants"].items():
        if variant.get("retire_at") and phase == "promoted":
            parts.append(
                Text(
                    f"{name} stays loaded until {_clock(variant['retire_at'])}: until then "
                    f"`lockgate rollout rollback {status['name']}` switches back at the next request"
                )
            )
    verdict = status.get("verdict")
    if verdict:
        reasons = "; ".join(verdict["reasons"]) or "-"
        # a finished rollout's last verdict is history: a hand rollback may follow a "promote"
        settled = _is_settled(phase)
        label = f"last verdict before it was {phase.replace('_', ' ')}: " if settled else "verdict: "
        parts.append(Text.assemble((label, "bold"), verdict["decision"], f"  ({reasons})"))
    shadow = status.get("shadow") or {}
    if shadow.get("mirrored"):
        parts.append(
            Text(
                f"shadow: {shadow['mirrored']:.0f} mirrored, {shadow['dropped']:.0f} dropped, "
                f"agreement {shadow['agreement']:.2%} over {shadow['labels_compared']:.0f} labels, "
                f"p99 {shadow['primary_p99_ms']:.1f} ms primary vs {shadow['shadow_p99_ms']:.1f} ms shadow"
            )
        )
    if shadow.get("answers_compared"):
        parts.append(
            Text(
                f"shadow answers: {shadow['answers_compared']:.0f} compared, exact match "
                f"{shadow['exact_match_rate']:.2%}, length ratio {shadow['mean_length_ratio']:.2f}, "
                f"cosine mean {shadow['mean_answer_cosine']:.3f} (min {shadow['min_answer_cosine']:.3f})"
            )
        )
    return Group(*parts)


def deploy_command(
    spec_file: Annotated[Path, typer.Argument(help="The deployment spec (YAML).")],
    start: Annotated[bool, typer.Option("--start", help="Start the rollout right away.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    actor: ActorOption = None,
) -> None:
    """Create or update a deployment on a running server from a spec file.

    The spec is checked here first (errors name the key), then the server loads and verifies every
    variant's model. A deployment whose rollout is still live refuses a new spec (409).

    Example:

        lockgate deploy canary.yaml --start

    with canary.yaml:

        name: churn
        variants: {stable: "models:/churn/3", canary: "models:/churn/4"}
        baseline: stable
        candidate: canary
        strategy:
          type: canary
          steps: [{weight_percent: 5, min_requests: 500}, {weight_percent: 50, min_duration_s: 600}]
    """
    from lockgate.rollout.evidence import stage_warnings
    from lockgate.rollout.spec import load_spec

    spec = load_spec(spec_file)
    for warning in stage_warnings(spec):
        err_console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    with _client(url, token) as client:
        client.deploy(spec.to_dict(), actor=_actor(actor))
        status = (
            client.command(spec.name, "start", actor=_actor(actor)) if start else client.status(spec.name)
        )
    console.print(render_status(status))


def _command(verb: str, summary: str, example: str) -> None:
    """Register ``lockgate rollout VERB NAME``: the commands differ only in the verb they send."""

    def command(
        name: NameArgument,
        url: UrlOption = None,
        token: TokenOption = None,
        reason: ReasonOption = None,
        actor: ActorOption = None,
    ) -> None:
        _run(name, verb, url, token, reason, actor)

    command.__doc__ = f"{summary}\n\nExample:  {example}"
    app.command(verb)(command)


_command("start", "Start a deployment's rollout (its first stage).", "lockgate rollout start churn")
_command(
    "promote",
    "Give the candidate all traffic now, skipping the remaining stages; moves the champion alias. "
    "At a pause step ({pause: {}}) it is the approval instead: the rollout moves on to the next step.",
    'lockgate rollout promote churn --reason "metrics look good"',
)
_command(
    "rollback",
    "Send all traffic back to the baseline now (effective at the next request).",
    'lockgate rollout rollback churn --reason "p99 doubled"',
)
_command("resume", "Carry on a paused rollout where it stopped.", "lockgate rollout resume churn")


@app.command("pause")
def pause_command(
    name: NameArgument,
    duration_s: Annotated[
        float | None, typer.Option("--for", help="Resume by itself after this many seconds.")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    reason: ReasonOption = None,
    actor: ActorOption = None,
) -> None:
    """Stop advancing (weights stay; a bad candidate is still rolled back).

    Example:  lockgate rollout pause churn --for 600 --reason "weekend"
    """
    _run(name, "pause", url, token, reason, actor, duration_s)


def _run(
    name: str,
    verb: str,
    url: str | None,
    token: str | None,
    reason: str | None,
    actor: str | None,
    duration_s: float | None = None,
) -> None:
    with _client(url, token) as client:
        status = client.command(name, verb, actor=_actor(actor), reason=reason, duration_s=duration_s)
    console.print(render_status(status))


@app.command("status")
def status_command(
    name: NameArgument,
    watch: Annotated[
        bool,
        typer.Option("--watch", help="A live view, refreshed until the rollout finishes (Ctrl-C stops)."),
    ] = False,
    interval_s: Annotated[float, typer.Option("--interval", help="Seconds between refreshes.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Phase, weights, per-variant requests, errors and latency, the verdict and the shadow diff.

    Example:  lockgate rollout status churn --watch
    """
    if interval_s <= 0:
        raise UserError(f"--interval must be above 0, got {interval_s}", hint="e.g. --interval 0.5")
    with _client(url, token) as client:
        status = client.status(name)
        if as_json:
            print(json.dumps(status, indent=2))
            return
        if not watch:
            console.print(render_status(status))
            return
        if not console.is_terminal:
            # a CI log: no live view to redraw, so one line each time something changes
            _watch_lines(client, name, status, interval_s)
            return
        from rich.live import Live

        with Live(render_status(status), console=console, refresh_per_second=4) as live:
            try:
                while not _is_settled(status["phase"]):
                    time.sleep(interval_s)
                    status = client.status(name)
                    live.update(render_status(status))
            except KeyboardInterrupt:
                pass


def status_line(status: dict[str, Any]) -> str:
    """One line of a status for a log: phase, stage, weights, verdict, requests and why."""
    variants = status["variants"]
    weights = ", ".join(f"{name} {v['weight_percent']:g}%" for name, v in variants.items())
    requests = ", ".join(f"{name} {v['requests']}" for name, v in variants.items())
    verdict = status.get("verdict")
    decision = verdict["decision"] if verdict else "none yet"
    return (
        f"{dt.datetime.now():%H:%M:%S} {status['name']} {status['phase']} stage {status['stage']}: "
        f"weights {weights}; verdict {decision}; requests {requests}; {status.get('reason') or '-'}"
    )


def _change(status: dict[str, Any]) -> tuple[Any, ...]:
    """What makes a new line: not the counters, which change with every request."""
    verdict = status.get("verdict")
    weights = tuple((name, v["weight_percent"]) for name, v in status["variants"].items())
    return status["phase"], status["stage"], weights, verdict and verdict["decision"], status.get("reason")


def _watch_lines(client: Any, name: str, status: dict[str, Any], interval_s: float) -> None:
    last: tuple[Any, ...] | None = None
    try:
        while True:
            if _change(status) != last:
                print(status_line(status), flush=True)
                last = _change(status)
            if _is_settled(status["phase"]):
                return
            time.sleep(interval_s)
            status = client.status(name)
    except KeyboardInterrupt:
        pass


@app.command("history")
def history_command(
    name: NameArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """The audit log: when, who, what, why, and the numbers behind each decision.

    Example:  lockgate rollout history churn
    """
    with _client(url, token) as client:
        events = client.history(name)
    if as_json:
        print(json.dumps(events, indent=2))
        return
    table = Table(title=f"{name}: audit log")
    for column in ("#", "when", "who", "action", "phase", "why", "numbers"):
        table.add_column(column)
    for event in events:
        numbers = event["numbers"]
        shown = {k: numbers[k] for k in _KEY_NUMBERS if numbers.get(k) is not None}
        table.add_row(
            str(event["id"]),
            dt.datetime.fromtimestamp(event["at"]).strftime("%H:%M:%S"),
            event["actor"],
            event["action"],
            f"{event['from_phase']} → {event['to_phase']}",
            event["reason"],
            ", ".join(f"{k}={v:g}" for k, v in shown.items()),
        )
    console.print(table)


_KEY_NUMBERS = (
    "candidate_weight_bp",
    "baseline_requests",
    "candidate_requests",
    "baseline_errors",
    "candidate_errors",
    "from_version",
    "to_version",
)
