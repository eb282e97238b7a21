"""``lockgate quickstart``: the whole lifecycle on embedded defaults, one function per stage.

Each stage takes the shared :class:`Context` and adds what it produced, so later stages (validate,
optimize, serve, canary) plug in as more functions in :data:`STAGES`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lockgate.errors import UserError
from lockgate.settings import Settings

__all__ = ["STAGES", "Context", "prepare_home", "run_quickstart"]

MODEL_NAME = "breast-cancer-classifier"
DATASET_NAME = "breast-cancer"
MARKER = "quickstart.marker"


@dataclass
class Context:
    """What the stages share: where things are, and what each stage produced."""

    settings: Settings
    console: Console
    seed: int = 42
    data_path: Path | None = None
    dataset_ref: str | None = None
    runs: dict[str, str] = field(default_factory=dict)  # model label -> run id
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    champion: str | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


def prepare_home(home: Path, *, is_fresh: bool) -> None:
    """Create ``home``; with ``is_fresh``, first remove a previous quickstart's home (and only that)."""
    if is_fresh and home.exists():
        if not (home / MARKER).exists() and any(home.iterdir()):
            raise UserError(
                f"--fresh would delete '{home}', which was not made by `lockgate quickstart`",
                hint="pass a different --home, or remove the folder yourself",
            )
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text(
        "made by lockgate quickstart; `lockgate quickstart --fresh` may delete this folder\n"
    )


def stage_data(ctx: Context) -> None:
    """Write scikit-learn's bundled breast-cancer data to CSV and snapshot it as a dataset version."""
    from sklearn.datasets import load_breast_cancer

    from lockgate.tracking.connection import connect
    from lockgate.tracking.datasets import snapshot

    frame = load_breast_cancer(as_frame=True).frame
    folder = ctx.settings.home / "data"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "breast_cancer.csv"
    frame.to_csv(path, index=False)
    version = snapshot(connect(ctx.settings), path, DATASET_NAME, description="sklearn breast-cancer")
    ctx.data_path, ctx.dataset_ref = path, version.ref
    state = "new version" if version.is_new else "unchanged"
    ctx.console.print(
        f"  dataset [bold]{version.ref}[/] ({state}): {len(frame)} rows, {frame.shape[1] - 1} features, "
        f"digest {version.digest[:12]}"
    )


def _candidates(seed: int) -> dict[str, tuple[Any, dict[str, Any]]]:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lr_params = {"C": 0.5, "max_iter": 2000}
    gb_params = {"n_estimators": 60, "max_depth": 2, "learning_rate": 0.1, "random_state": seed}
    return {
        "logistic-regression": (
            make_pipeline(StandardScaler(), LogisticRegression(**lr_params)),
            {"model": "logistic_regression", **lr_params},
        ),
        "gradient-boosting": (
            GradientBoostingClassifier(**gb_params),
            {"model": "gradient_boosting", **gb_params},
        ),
    }


def stage_train(ctx: Context) -> None:
    """Train two models with tracking: params, metrics, curves, provenance and the dataset link."""
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
    from sklearn.model_selection import train_test_split

    from lockgate.tracking.tracker import track

    assert ctx.data_path is not None
    assert ctx.dataset_ref is not None
    frame = pd.read_csv(ctx.data_path)
    x, y = frame.drop(columns=["target"]), frame["target"]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=ctx.seed, stratify=y
    )
    for label, (model, params) in _candidates(ctx.seed).items():
        with track(run_name=label, params={**params, "seed": ctx.seed}, datasets=[ctx.dataset_ref]) as run:
            model.fit(x_train, y_train)
            if hasattr(model, "staged_predict_proba"):
                for step, proba in enumerate(model.staged_predict_proba(x_test)):
                    run.log_metric("test_log_loss", log_loss(y_test, proba), step=step)
            proba = model.predict_proba(x_test)[:, 1]
            pred = (proba >= 0.5).astype(int)
            scores = {
                "accuracy": float(accuracy_score(y_test, pred)),
                "f1": float(f1_score(y_test, pred)),
                "roc_auc": float(roc_auc_score(y_test, proba)),
                "log_loss": float(log_loss(y_test, proba)),
            }
            run.log_metrics(scores)
            signature = infer_signature(x_test.astype("float64"), proba)
            run.log_model(model, signature=signature)
        ctx.runs[label] = run.run_id
        ctx.scores[label] = scores
        ctx.console.print(
            f"  trained [bold]{label}[/] run {run.run_id[:8]}: accuracy {scores['accuracy']:.4f}, "
            f"roc_auc {scores['roc_auc']:.4f}"
        )


def stage_compare(ctx: Context) -> None:
    """Compare the two runs side by side and pick the better one by ROC AUC."""
    from lockgate.tracking.connection import connect
    from lockgate.tracking.runs import compare_rows, get_run, summarize

    conn = connect(ctx.settings)
    labels = list(ctx.runs)
    summaries = [summarize(get_run(conn, ctx.runs[label])) for label in labels]
    table = Table(title="run comparison (★ best)")
    table.add_column("metric")
    for label in labels:
        table.add_column(label, justify="right")
    for row in compare_rows(summaries):
        if row.kind != "metric" or row.key == "test_log_loss":
            continue
        table.add_row(
            row.key,
            *(f"{v:.4f}" + (" ★" if i in row.best else "") for i, v in enumerate(row.values)),
        )
    ctx.console.print(table)
    ctx.champion = max(
        labels, key=lambda label: (ctx.scores[label]["roc_auc"], -ctx.scores[label]["log_loss"])
    )


def stage_register(ctx: Context) -> None:
    """Register the better model and point the ``champion`` alias at it."""
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import register

    assert ctx.champion is not None
    version = register(
        connect(ctx.settings),
        ctx.runs[ctx.champion],
        MODEL_NAME,
        alias="champion",
        description=f"quickstart: {ctx.champion}",
    )
    ctx.extras["champion_version"] = version
    ctx.console.print(
        f"  registered [bold]{version.ref}[/] ({ctx.champion}) as [green]champion[/], "
        f"sha256 {str(version.artifact_sha256)[:12]}"
    )


def stage_serve(ctx: Context, requests: int = 300) -> None:
    """Serve the champion over HTTP on 127.0.0.1 (checksum verified), send requests, print latencies."""
    import httpx
    import numpy as np
    import pandas as pd

    from lockgate.serving import build_app, resolve_source, run_server_in_thread

    assert ctx.data_path is not None
    frame = pd.read_csv(ctx.data_path).drop(columns=["target"])
    rows = frame.sample(n=min(requests, len(frame)), replace=requests > len(frame), random_state=ctx.seed)
    source = resolve_source(f"models:/{MODEL_NAME}@champion")
    latencies_ms: list[float] = []
    with run_server_in_thread(build_app(source)) as handle, httpx.Client(base_url=handle.url) as client:
        columns = list(rows.columns)
        started = time.perf_counter()
        for values in rows.itertuples(index=False):
            body = {"dataframe_split": {"columns": columns, "data": [list(values)]}}
            sent = time.perf_counter()
            response = client.post("/invocations", json=body)
            latencies_ms.append((time.perf_counter() - sent) * 1000)
            response.raise_for_status()
        elapsed = time.perf_counter() - started
        version = response.headers.get("x-model-version")
    p50, p95, p99 = np.percentile(latencies_ms, [50, 95, 99])
    ctx.extras["serve_latency_ms"] = {"p50": p50, "p95": p95, "p99": p99}
    ctx.console.print(
        f"  served {MODEL_NAME} v{version} (sha256 verified) at {handle.url}: "
        f"{len(latencies_ms)} requests one at a time, p50 {p50:.2f} ms, p95 {p95:.2f} ms, "
        f"p99 {p99:.2f} ms, {len(latencies_ms) / elapsed:.0f} req/s"
    )


GATE_POLICY = """
holdout: {dataset: %s, target: target}
against: champion
seed: %d
checks:
  metrics: [{metric: accuracy, threshold: 0.9}]
  champion:
    - {metric: accuracy, test: mcnemar, margin: 0.02}
    - {metric: roc_auc, test: bootstrap, margin: 0.01, resamples: 500}
  signature: {}
  drift: {max_psi: 0.25, max_ks: 0.2}
"""


def stage_gate(ctx: Context) -> None:
    """Register the other model as ``challenger`` and gate it against the champion on the held-out rows."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from lockgate.cli.validate import report_table
    from lockgate.gates.gate import record_report, validate
    from lockgate.gates.policy import parse_policy
    from lockgate.tracking.connection import connect
    from lockgate.tracking.datasets import snapshot
    from lockgate.tracking.registry import register

    assert ctx.data_path is not None and ctx.champion is not None
    conn = connect(ctx.settings)
    frame = pd.read_csv(ctx.data_path)
    # The same split as the training stage: the rows neither model was fitted on.
    _, holdout = train_test_split(frame, test_size=0.3, random_state=ctx.seed, stratify=frame["target"])
    path = ctx.data_path.with_name("holdout.csv")
    holdout.to_csv(path, index=False)
    holdout_ref = snapshot(conn, path, f"{DATASET_NAME}-holdout", description="quickstart holdout").ref
    other = next(label for label in ctx.runs if label != ctx.champion)
    challenger = register(
        conn, ctx.runs[other], MODEL_NAME, alias="challenger", description=f"quickstart: {other}"
    )
    policy = parse_policy(GATE_POLICY % (holdout_ref, ctx.seed), source="quickstart policy")
    report = validate(conn, challenger.ref, policy)
    record_report(conn, report)
    ctx.extras["gate_report"] = report
    ctx.console.print(report_table(report))
    word = "[bold green]passes[/]" if report.passed else "[bold red]fails[/]"
    failed = f"; failed: {', '.join(r.name for r in report.failures)}" if not report.passed else ""
    ctx.console.print(
        f"  challenger [bold]{challenger.ref}[/] ({other}) {word} the gate against the champion "
        f"in {report.duration_s:.1f} s{failed}"
    )


def stage_optimize(ctx: Context) -> None:
    """Export the champion to ONNX and quantize it to int8; print the measured trade-off table.

    A tree or linear scikit-learn graph has no matrix products for int8 to act on: that candidate is
    reported as not applicable rather than registered as a copy.
    """
    from lockgate.cli.optimize import tradeoff_table
    from lockgate.optimize.measure import MeasureConfig
    from lockgate.optimize.methods import make_spec
    from lockgate.optimize.optimizer import open_optimizer
    from lockgate.tracking.connection import connect

    optimizer = open_optimizer(
        connect(ctx.settings),
        f"{MODEL_NAME}@champion",
        measure=MeasureConfig(calls_b1=30, calls_b32=5, warmup=2),
        threads=1,
        seed=ctx.seed,
        workdir=ctx.settings.home / "optimize",
    )
    results = [optimizer.run(make_spec("onnx"))]
    try:
        results.append(optimizer.run(make_spec("quantize")))
    except UserError as exc:
        ctx.console.print(f"  int8 quantization: not applicable ({exc.message})")
    ctx.console.print(tradeoff_table(optimizer.version.ref, optimizer.parent_record(), results))
    registered = [r.version.ref for r in results if r.version is not None]
    ctx.extras["optimized_versions"] = registered
    ctx.console.print(
        f"  registered {', '.join(registered) or 'nothing'} with lineage to {optimizer.version.ref}"
    )


def _canary_candidate(ctx: Context) -> Any:
    """The version to canary: the champion's optimized (ONNX) version, else the challenger if it
    passed the gate, else a rebuild of the champion."""
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import get_model_version, register

    conn = connect(ctx.settings)
    optimized = ctx.extras.get("optimized_versions") or []
    if optimized:
        return get_model_version(conn, optimized[0])
    report = ctx.extras.get("gate_report")
    if report is not None and report.passed:
        return get_model_version(conn, f"{MODEL_NAME}@challenger")
    assert ctx.champion is not None
    return register(
        conn,
        ctx.runs[ctx.champion],
        MODEL_NAME,
        description=f"quickstart: a rebuild of the champion ({ctx.champion}) to canary",
    )


def stage_canary(ctx: Context, max_requests: int = 3000) -> None:
    """Canary a new version behind the champion on a real server: 10% then 50%, judged live."""
    import secrets

    import httpx
    import pandas as pd
    from rich.markup import escape

    from lockgate.rollout.sqlstore import SqlStore
    from lockgate.rollout.store import default_store_url
    from lockgate.serving.client import AdminClient
    from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread

    assert ctx.data_path is not None
    candidate = _canary_candidate(ctx)
    champion = ctx.extras["champion_version"]
    token = secrets.token_hex(16)
    spec = {
        "name": "quickstart-canary",
        "variants": {"champion": champion.uri, "candidate": candidate.uri},
        "baseline": "champion",
        "candidate": "candidate",
        "strategy": {
            "type": "canary",
            "steps": [
                {"weight_percent": 10, "min_requests": 60},
                {"weight_percent": 50, "min_requests": 200},
            ],
        },
        # A demo's scale: judged from 50 requests per arm, and a stage advances once the candidate
        # is shown at most 3 points worse on errors and 50% slower; the defaults (200 requests,
        # 0.5 points, 10%) need the traffic of a real service to show it.
        "analysis": {
            "policy": "sequential",
            "alpha": 0.05,
            "min_samples": 50,
            "guardrails": {
                "errors": {"max_increase": {"absolute_pp": 3}},
                "latency": {"max_increase": {"relative": 0.5}},
            },
        },
    }
    frame = pd.read_csv(ctx.data_path).drop(columns=["target"])
    columns = list(frame.columns)
    rows = frame.to_numpy().tolist()
    store = SqlStore(default_store_url(ctx.settings.home))
    config = ServeConfig("", admin_token=token, tick_s=0.1)
    app = build_app(config=config, deployments=build_deployments(config, store))
    with run_server_in_thread(app) as handle, AdminClient(handle.url, token=token) as admin:
        admin.deploy(spec, actor="quickstart")
        status = admin.command("quickstart-canary", "start", actor="quickstart", reason="quickstart canary")
        ctx.console.print(
            f"  canary of {MODEL_NAME} v{candidate.version} behind the champion v{champion.version} "
            f"at {handle.url}: steps 10% → 50% → 100%, each step once the anytime-valid sequential "
            "policy shows the candidate within its margins (errors +3 points, latency +50%, "
            "sample-ratio check, alpha 0.05)"
        )
        sent = 0
        with httpx.Client(base_url=handle.url) as client:
            while status["phase"] == "stepping" and sent < max_requests:
                for _ in range(50):
                    row = rows[sent % len(rows)]
                    body = {"dataframe_split": {"columns": columns, "data": [row]}}
                    client.post("/invocations", json=body, headers={"x-routing-key": f"user-{sent}"})
                    sent += 1
                status = admin.status("quickstart-canary")
                if sent % 250 == 0 or status["phase"] != "stepping":
                    ctx.console.print("  " + escape(_status_line(status, sent)))
        if status["phase"] == "stepping":
            status = admin.command(
                "quickstart-canary", "rollback", actor="quickstart", reason="no decision in time"
            )
        events = admin.history("quickstart-canary")
    store.close()
    ctx.extras["canary_status"] = status
    if status["phase"] == "promoted":
        ctx.extras["champion_version"] = candidate  # the registry's champion alias moved with it
        outcome = "[bold green]promoted[/]"
    else:
        outcome = f"[bold red]{status['phase']}[/]"
    ctx.console.print(f"  {outcome}: {escape(status['reason'])}")
    for event in events[-3:]:
        ctx.console.print(f"    audit: {event['actor']} {event['action']} - {escape(event['reason'])}")


def _status_line(status: dict[str, Any], sent: int) -> str:
    parts = []
    for name, variant in status["variants"].items():
        p99 = "-" if variant["p99_ms"] is None else f"{variant['p99_ms']:.1f}"
        parts.append(
            f"{name} {variant['weight_percent']:g}%: {variant['requests']} req, "
            f"{variant['errors']} err, p99 {p99} ms"
        )
    verdict = (status.get("verdict") or {}).get("decision", "-")
    return f"after {sent} requests [{status['phase']}] " + " | ".join(parts) + f" | verdict {verdict}"


Stage = Callable[[Context], None]
STAGES: list[tuple[str, Stage]] = [
    ("snapshot the dataset", stage_data),
    ("train two models with tracking", stage_train),
    ("compare the runs", stage_compare),
    ("register the better one as champion", stage_register),
    ("gate the challenger against the champion", stage_gate),
    ("serve the champion over HTTP", stage_serve),
    ("export and quantize the champion", stage_optimize),
    ("canary the optimized version behind the champion", stage_canary),
]


def run_quickstart(ctx: Context, stages: list[tuple[str, Stage]] | None = None) -> Context:
    """Run each stage in order, timing it."""
    chosen = stages or STAGES
    for index, (title, stage) in enumerate(chosen, start=1):
        ctx.console.print(f"[bold cyan][{index}/{len(chosen)}] {title}[/]")
        started = time.perf_counter()
        with ctx.console.status(f"{title}..."):
            stage(ctx)
        ctx.timings_s[title] = time.perf_counter() - started
    return ctx
