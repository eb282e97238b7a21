"""``lockgate serve``: serve one model over HTTP (registered in ``lockgate/cli/main.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # the serving stack loads numpy and more: only ``lockgate serve`` needs it
    from lockgate.serving.server import ServeConfig

__all__ = ["serve_command"]


def serve_command(
    model_uri: Annotated[
        str | None,
        typer.Argument(
            help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/PATH or a local path "
            "(optional with --deployment or --store)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes sharing the port.")] = 1,
    name: Annotated[
        str | None, typer.Option(help="Name to serve the model under (default: its own).")
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="Expected sha256 of a local or runs:/ model folder.")
    ] = None,
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified",
            help="Serve a registered version that has no recorded digest.",
        ),
    ] = False,
    allow_unsafe_load: Annotated[
        bool,
        typer.Option(
            "--allow-unsafe-load",
            help="Load a pickled model (which runs code) even when its bytes were not verified "
            "against the registry's checksum or --sha256.",
        ),
    ] = False,
    max_batch_size: Annotated[int, typer.Option(help="Requests per model call, at most.")] = 32,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long a batch waits for more requests (0: never).")
    ] = 0.0,
    max_queue: Annotated[int, typer.Option(help="Requests waiting per model before answering 503.")] = 1024,
    execution: Annotated[str, typer.Option(help="auto, thread or inline: where the model runs.")] = "auto",
    fast_path: Annotated[
        str,
        typer.Option(help="auto, onnx, native or pyfunc: how scikit-learn models are run."),
    ] = "auto",
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            "--prometheus-url",
            metavar="URL",
            help="The Prometheus that a spec's analysis.metrics are queried on at each look "
            "(e.g. http://127.0.0.1:9090).",
        ),
    ] = None,
    threads: Annotated[int, typer.Option(help="Threads per model call (ONNX Runtime).")] = 1,
    decode_engine: Annotated[
        str,
        typer.Option(
            "--decode-engine",
            metavar="process|thread",
            help="Where a generative model decodes: in a process of its own (the default; its steps "
            "never wait for the server's event loop) or in a thread of the server.",
        ),
    ] = "process",
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body accepted (413 beyond).")] = 10
    * 1024
    * 1024,  # lockgate.serving.app.DEFAULT_MAX_BODY_BYTES (a test pins the two)
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    deployment: Annotated[
        list[Path] | None,
        typer.Option(
            "--deployment",
            help="A deployment spec (YAML) to serve and roll out; repeatable. A stored rollout of the "
            "same name carries on where it was.",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="Rollout store URL (default with --deployment: sqlite under LOCKGATE_HOME); every "
            "deployment in it is served.",
        ),
    ] = None,
    follow_registry: Annotated[
        bool,
        typer.Option(help="Move the registry's champion alias on promote and rollback."),
    ] = True,
    persist_feedback: Annotated[
        bool,
        typer.Option(
            "--persist-feedback",
            help="Keep which variant answered each request in the store, so feedback counts once "
            "on any gateway and after a restart (a batched write a few times a second).",
        ),
    ] = False,
    alert_webhook: Annotated[
        str | None,
        typer.Option(
            "--alert-webhook",
            metavar="URL",
            help="POST a JSON alert here when a rollout rolls back or halts on a sample-ratio "
            "mismatch (also written to the audit log; a failed delivery is tried 3 times). Off by default.",
        ),
    ] = None,
    alert_format: Annotated[
        str,
        typer.Option(
            "--alert-format",
            help="slack (Slack's text and blocks; Mattermost takes it too), generic (lockgate's JSON "
            "document) or auto (slack for hooks.slack.com, else generic).",
        ),
    ] = "auto",
    drift_reference: Annotated[
        str | None,
        typer.Option(
            "--drift-reference",
            metavar="NAME@VERSION",
            help="Training data (a dataset version) to compare each deployment's live inputs with: "
            "one request in --drift-sample-every is sketched per variant (PSI, KS, JS in the status).",
        ),
    ] = None,
    drift_sample_every: Annotated[
        int, typer.Option(help="Sketch one request in this many for live drift.")
    ] = 10,
    retrain_on_drift: Annotated[
        Path | None,
        typer.Option(
            "--retrain-on-drift",
            metavar="PIPELINE.yaml",
            help="On a variant's first drift, run `lockgate pipeline run PIPELINE.yaml` in the "
            "background (audited, and alerted with --alert-webhook). Off by default; needs "
            "--drift-reference.",
        ),
    ] = None,
    retrain_cooldown_s: Annotated[
        float, typer.Option(help="At most one retraining run per this many seconds.")
    ] = 3600.0,
    log_format: Annotated[
        str, typer.Option(help="text (for people) or json (one object per line, with the request id).")
    ] = "text",
    access_log: Annotated[
        bool, typer.Option(help="Log one line per answered request (id, path, status, duration, variant).")
    ] = False,
    metrics: Annotated[
        bool, typer.Option(help="Count requests for Prometheus and serve GET /metrics.")
    ] = True,
    capture_every: Annotated[
        int,
        typer.Option(
            metavar="N",
            help="Capture one answered request in N of each deployment (inputs, outputs, variant, "
            "latency) into the store, for `lockgate replay`. 0: off.",
        ),
    ] = 0,
    capture_keep: Annotated[
        int, typer.Option(metavar="K", help="Captured requests kept per deployment (the newest).")
    ] = 10_000,
    trace_sample: Annotated[
        float,
        typer.Option(
            metavar="RATE",
            help="Record this share of text generations (0 to 1) as MLflow traces, written off the "
            "request path; list them with `lockgate traces NAME`. 0: off.",
        ),
    ] = 0.0,
    trace_experiment: Annotated[
        str, typer.Option(help="The MLflow experiment traces are written to.")
    ] = "lockgate-traces",
    backend: Annotated[
        str,
        typer.Option(
            help="embedded (every variant in this process) or ray (each variant a Ray Serve "
            "deployment with the spec's replicas; needs lockgate\\[ray]).",
        ),
    ] = "embedded",
    ray_address: Annotated[
        str | None,
        typer.Option(help="With --backend ray: a Ray cluster to join (default: start Ray here)."),
    ] = None,
    ray_cpus: Annotated[
        int | None,
        typer.Option(help="With --backend ray and no --ray-address: CPUs of the Ray started here."),
    ] = None,
    graceful_timeout_s: Annotated[
        float,
        typer.Option(
            "--graceful-timeout-s",
            help="After SIGTERM, how long in-flight requests may take before the process exits anyway.",
        ),
    ] = 30.0,
) -> None:
    """Serve a model over HTTP: Open Inference Protocol (V2) and MLflow's /invocations.

    The model's bytes are checked against the digest recorded at registration before it is served.
    SIGTERM drains in-flight requests and exits 0. With --deployment (or --store) it also runs
    rollouts: requests to the deployment's name are routed between its variants, and the admin API
    (on when LOCKGATE_ADMIN_TOKEN is set) drives them; see `lockgate rollout --help`.

    Examples:

        lockgate serve models:/churn@champion --port 8080

        curl -s localhost:8080/invocations -H 'Content-Type: application/json' \\
          -d '{"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}}'

        LOCKGATE_ADMIN_TOKEN=$(openssl rand -hex 16) lockgate serve --deployment canary.yaml

        # then open http://127.0.0.1:8080/dashboard?token=$LOCKGATE_ADMIN_TOKEN; alerts to a chat:
        lockgate serve --deployment canary.yaml --alert-webhook https://hooks.example.com/lockgate \\
          --drift-reference churn-train@3

        # JSON logs with an access line per request; capture 1 in 100 requests for replay
        lockgate serve --deployment canary.yaml --log-format json --access-log --capture-every 100

        # an LLM: OpenAI-compatible endpoints; one generation in ten as an MLflow trace
        lockgate serve ./tiny-gpt2 --name support-lm --trace-sample 0.1

        # each variant a Ray Serve deployment (pip install 'lockgate\\[ray]'); see docs/scale-out.md
        lockgate serve --backend ray --deployment canary.yaml --ray-cpus 2
    """
    from lockgate.errors import UserError
    from lockgate.serving.logs import check_log_format

    if execution not in ("auto", "thread", "inline"):
        raise UserError(
            f"--execution must be auto, thread or inline, got '{execution}'",
            hint="auto picks inline for models faster than 0.25 ms a call",
        )
    if fast_path not in ("auto", "onnx", "native", "pyfunc"):
        raise UserError(
            f"--fast-path must be auto, onnx, native or pyfunc, got '{fast_path}'",
            hint="auto serves scikit-learn models through ONNX Runtime when they convert exactly",
        )
    if backend not in ("embedded", "ray"):
        raise UserError(
            f"--backend must be embedded or ray, got '{backend}'",
            hint="embedded serves every variant in this process; ray runs them on Ray Serve",
        )
    if backend == "embedded" and (ray_address is not None or ray_cpus is not None):
        raise UserError("--ray-address and --ray-cpus need --backend ray", hint="add --backend ray")
    from lockgate.serving.runtimes import FastPath
    from lockgate.serving.server import ServeConfig, serve
    from lockgate.serving.variant import Execution, ServingPolicy

    exec_mode: Execution = execution  # type: ignore[assignment]
    path_mode: FastPath = fast_path  # type: ignore[assignment]
    from lockgate.rollout.spec import load_spec

    specs = tuple(load_spec(path) for path in deployment or ())
    config = ServeConfig(
        model_uri or "",
        host=host,
        port=port,
        workers=workers,
        name=name,
        sha256=sha256,
        allow_unverified=allow_unverified,
        allow_unsafe_load=allow_unsafe_load,
        max_body_bytes=max_body_bytes,
        policy=ServingPolicy(max_batch_size, max_wait_ms, max_queue, exec_mode),
        fast_path=path_mode,
        threads=threads,
        decode_engine=decode_engine,
        log_level=log_level,
        deployments=specs,
        store_url=store,
        admin_token=os.environ.get("LOCKGATE_ADMIN_TOKEN") or None,
        follow_registry=follow_registry,
        persist_joins=persist_feedback,
        alert_webhook=alert_webhook,
        alert_format=alert_format,
        prometheus_url=prometheus_url,
        drift_reference=drift_reference,
        drift_sample_every=drift_sample_every,
        retrain_pipeline=str(retrain_on_drift) if retrain_on_drift is not None else None,
        retrain_cooldown_s=retrain_cooldown_s,
        expose_metrics=metrics,
        log_format=check_log_format(log_format),
        access_log=access_log,
        capture_every=capture_every,
        capture_keep=capture_keep,
        trace_sample=trace_sample,
        trace_experiment=trace_experiment,
        graceful_timeout_s=graceful_timeout_s,
    )
    if backend == "ray":
        _serve_on_ray(config, ray_address, ray_cpus)
        return
    serve(config)


def _serve_on_ray(config: ServeConfig, address: str | None, num_cpus: int | None) -> None:
    from lockgate.errors import UserError

    try:
        from lockgate.serving.ray_serve import RayOptions, serve_ray
    except ImportError as exc:
        raise UserError(
            f"--backend ray needs Ray Serve, which is not installed ({exc})",
            hint="pip install 'lockgate[ray]'",
        ) from None
    serve_ray(config, RayOptions(address=address, num_cpus=num_cpus))
