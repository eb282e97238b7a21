"""Running the app: one process, N worker processes on one port, or a background thread.

- :func:`serve` resolves and verifies the model first (an integrity failure stops here, before any
  port opens) and says so on stderr (``verified models:/m@champion (version 3) sha256 1a2b3c4d5e6f``),
  then runs uvicorn with uvloop and httptools. SIGTERM or SIGINT: readiness turns false, uvicorn
  stops accepting, in-flight requests finish, the process exits normally (code 0). Registry and run
  artifacts are downloaded into one temporary folder that lives as long as the server: removed when
  it exits, after a SIGTERM too (one during the download exits with 143).
- ``workers > 1`` starts that many processes that each bind the port with ``SO_REUSEPORT`` (the
  kernel spreads connections) and forwards SIGTERM/SIGINT to them; metrics are summed across them.
- :func:`run_server_in_thread` serves an app from a background thread and returns a handle with its
  URL, for the quickstart, notebooks and tests.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from lockgate.errors import IntegrityError, LockgateError, ServiceUnavailable, UserError
from lockgate.llm.traces import TraceSampler, TraceWriter
from lockgate.monitor.alerts import WebhookSender
from lockgate.monitor.hooks import monitor_hooks
from lockgate.monitor.prometheus import PrometheusReader
from lockgate.monitor.reference import Reference, load_reference
from lockgate.monitor.retrain import RetrainTrigger
from lockgate.serving.app import LOOPBACK_HOSTS, ServingApp
from lockgate.serving.backend import Backend
from lockgate.serving.deployment import DeploymentManager
from lockgate.serving.logs import AccessLog, format_line, log_config, says_info
from lockgate.serving.runtimes import FastPath, load_predictor
from lockgate.serving.serve_config import ServeConfig
from lockgate.serving.source import ModelSource, describe_source, resolve_source, unsafe_format
from lockgate.serving.variant import ServingPolicy, Variant

__all__ = [
    "ServeConfig",
    "ServerHandle",
    "build_app",
    "check_safe_to_load",
    "load_variant",
    "run_server_in_thread",
    "serve",
]

_log = logging.getLogger("lockgate.serving")


def check_safe_to_load(source: ModelSource, *, allow_unsafe: bool) -> None:
    """Refuse a model whose loading runs code (a pickle) unless its bytes were verified."""
    if not source.is_verified and not allow_unsafe:
        why = unsafe_format(source.path)
        if why is not None:
            raise IntegrityError(
                f"model '{source.uri}' is not loaded: {why}, and its bytes were not verified",
                hint="register it through lockgate (the checksum is verified before loading), give "
                "--sha256, or pass --allow-unsafe-load if you trust where it came from",
            )


def load_variant(
    source: ModelSource,
    *,
    policy: ServingPolicy | None = None,
    fast_path: FastPath = "auto",
    threads: int = 1,
    allow_unsafe: bool = False,
    decode_engine: str = "thread",
) -> Variant:
    """Load the model in ``source`` into a warmed-up :class:`Variant` (blocking, seconds).

    A model whose loading runs code (a pickle) is loaded only when its bytes were verified against
    the registry's checksum, or with ``allow_unsafe``: otherwise anyone who can write a file the
    server is pointed at can run code in it.
    """
    check_safe_to_load(source, allow_unsafe=allow_unsafe)
    predictor = load_predictor(source.path, fast_path=fast_path, threads=threads, decode_engine=decode_engine)
    predictor.load()
    variant = Variant(source.name, source.version, predictor, policy or ServingPolicy())
    variant.warm_up()
    _log.info(
        "loaded %s v%s with %s (warm-up %.3f ms a call)",
        source.name,
        source.version,
        predictor.runtime,
        variant.warmup_ms or float("nan"),
    )
    return variant


class _MlflowChampion:
    """The registry side of a rollout: MLflow's ``champion`` alias follows promote and rollback."""

    def move_champion(self, model_uri: str) -> tuple[str | None, str] | None:
        from lockgate.tracking.connection import connect
        from lockgate.tracking.registry import move_alias

        if not model_uri.startswith("models:/"):
            return None
        return move_alias(connect(), model_uri, "champion")


def build_deployments(
    config: ServeConfig,
    store: Any = None,
    *,
    backend: Backend | None = None,
    drift_reference: Reference | None = None,
    downloads: Path | None = None,
) -> DeploymentManager:
    """The deployment manager ``config`` asks for: its store (SQLite under home by default), a
    loader that verifies each variant's model (``backend``: another place to run variants, e.g.
    Ray Serve), each spec's policy (its ``analysis``), and the monitoring hooks (alerts, drift
    against ``config.drift_reference``, or ``drift_reference`` already in memory, retraining,
    capture). A variant's registry or run artifacts are downloaded under ``downloads`` when given
    (the server's own temporary folder, removed when it exits)."""
    from lockgate.rollout.policy import policy_for
    from lockgate.rollout.sqlstore import SqlStore
    from lockgate.rollout.store import default_store_url
    from lockgate.settings import current_settings

    if store is None:
        store = SqlStore(config.store_url or default_store_url(current_settings().home))

    def load(deployment: str, variant: str, uri: str) -> Variant:
        # a registered model keeps its registry name; a folder or run is named by its variant
        named = None if uri.startswith("models:/") else variant
        # over the admin API a relative path would mean this server's working directory
        download_dir = None if downloads is None else Path(tempfile.mkdtemp(prefix="variant-", dir=downloads))
        source = resolve_source(
            uri,
            allow_unverified=config.allow_unverified,
            name=named,
            allow_relative=False,
            download_dir=download_dir,
        )
        loaded = load_variant(
            source,
            policy=config.policy,
            fast_path=config.fast_path,
            threads=config.threads,
            decode_engine=config.decode_engine,
            allow_unsafe=config.allow_unsafe_load,
        )
        loaded.key = f"{deployment}/{variant}"
        return loaded

    if drift_reference is None and config.drift_reference:
        drift_reference = load_reference(config.drift_reference)
    hooks = monitor_hooks(
        alerts=WebhookSender(config.alert_webhook, body_format=config.alert_format)
        if config.alert_webhook
        else None,
        drift_reference=drift_reference,
        drift_sample_every=config.drift_sample_every,
        retrain=_retrain_trigger(config),
        capture_every=config.capture_every,
        capture_keep=config.capture_keep,
    )
    return DeploymentManager(
        store,
        load=load,
        backend=backend,
        policy_for=policy_for,
        registry=_MlflowChampion() if config.follow_registry else None,
        tick_s=config.tick_s,
        initial=config.deployments,
        persist_joins=config.persist_joins,
        external_metrics=PrometheusReader(config.prometheus_url).values if config.prometheus_url else None,
        hooks=hooks,
        retire_grace_s=config.retire_grace_s,
    )


def _retrain_trigger(config: ServeConfig) -> RetrainTrigger | None:
    """The retraining trigger ``--retrain-on-drift`` asks for, its pipeline file parsed up front."""
    if config.retrain_pipeline is None:
        return None
    from pathlib import Path

    from lockgate.pipeline import load_pipeline

    load_pipeline(Path(config.retrain_pipeline))  # a bad file stops the server now, not at the first drift
    return RetrainTrigger(config.retrain_pipeline, cooldown_s=config.retrain_cooldown_s)


def build_app(
    source: ModelSource | None = None,
    *,
    config: ServeConfig | None = None,
    variants: list[Variant] | None = None,
    deployments: DeploymentManager | None = None,
    downloads: Path | None = None,
) -> ServingApp:
    """An app that serves ``variants`` now, and loads ``source`` in the background at startup;
    ``downloads``: where the deployments' variants are downloaded (see :func:`build_deployments`)."""
    config = config or ServeConfig(str(source.path) if source else "")
    if deployments is None and config.has_deployments:
        deployments = build_deployments(config, downloads=downloads)
    loader = None
    if source is not None:

        def loader() -> list[Variant]:
            return [
                load_variant(
                    source,
                    policy=config.policy,
                    fast_path=config.fast_path,
                    threads=config.threads,
                    decode_engine=config.decode_engine,
                    allow_unsafe=config.allow_unsafe_load,
                )
            ]

    return ServingApp(
        variants or [],
        loader=loader,
        max_body_bytes=config.max_body_bytes,
        deployments=deployments,
        admin_token=config.admin_token,
        allowed_hosts=LOOPBACK_HOSTS if _is_loopback(config.host) else None,
        expose_metrics=config.expose_metrics,
        access_log=AccessLog(config.log_format) if config.access_log else None,
        traces=_trace_writer(config),
    )


def _trace_writer(config: ServeConfig) -> TraceSampler | None:
    """Where sampled generations go (``--trace-sample``): MLflow's tracking store in force."""
    if config.trace_sample <= 0.0:
        return None
    from lockgate.settings import current_settings

    settings = current_settings()
    writer = TraceWriter(settings.tracking_uri, config.trace_experiment, settings=settings)
    return TraceSampler(writer, config.trace_sample)


def _is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def _uvicorn_config(app: ServingApp, config: ServeConfig) -> Any:
    import uvicorn

    logging_config = log_config(config.log_format, config.log_level)
    extra: dict[str, Any] = {} if logging_config is None else {"log_config": logging_config}
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=config.log_level,
        timeout_graceful_shutdown=max(1, round(config.graceful_timeout_s)),
        server_header=False,
        **extra,
    )


def _server_class() -> Any:
    import uvicorn

    class _DrainingServer(uvicorn.Server):
        """Turns readiness off at the first signal, and exits normally after draining.

        uvicorn re-raises a captured signal after its graceful shutdown, which would end the
        process with the signal's status; a drained server has nothing left to do, so it does not.
        """

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            app = self.config.loaded_app if self.config.loaded else self.config.app
            if isinstance(app, ServingApp):
                app.is_draining = True
                if app.draining_since is None:
                    app.draining_since = time.monotonic()
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return _DrainingServer


def _bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="pick another --port, or stop whatever holds this one",
        ) from None
    sock.set_inheritable(True)
    return sock


def _run_one(
    source: ModelSource | None,
    config: ServeConfig,
    sock: socket.socket | None,
    downloads: Path,
    *,
    load_first: bool = False,
) -> None:
    """Serve on ``sock`` until stopped; ``downloads``: the server's temporary folder (its
    deployments' variants go there). ``load_first``: listen only once the models are loaded (a
    worker of several sharing a port; alone, a server listens at once and says it is loading)."""
    server_box: list[Any] = []

    def stop_on_load_error(_: BaseException) -> None:
        if server_box:
            server_box[0].should_exit = True

    app = build_app(source, config=config, downloads=downloads)
    app.on_load_error = stop_on_load_error
    app.load_before_serving = load_first
    app.grace_s = config.graceful_timeout_s
    server = _server_class()(_uvicorn_config(app, config))
    server_box.append(server)
    server.run(sockets=[sock] if sock is not None else None)
    if app.is_abandoned:
        # a model thread stuck in the model's own code cannot be stopped, and the interpreter
        # would wait for it at exit: everything else is drained and flushed, so leave now
        shutil.rmtree(downloads, ignore_errors=True)  # os._exit skips every cleanup
        logging.shutdown()
        os._exit(0)
    if app.load_error is not None:
        if isinstance(app.load_error, LockgateError):
            raise app.load_error
        what = f"model '{source.name}' from {source.path}" if source else "the deployments"
        raise ServiceUnavailable(f"could not load {what}: {app.load_error}") from app.load_error


def _worker_main(source: ModelSource | None, config: ServeConfig, downloads: Path) -> None:
    sock = _bind(config.host, config.port, reuse_port=True)
    try:
        # a folder of its own inside the server's: the parent removes the whole after the workers.
        # The kernel spreads a shared port's connections over every listening worker, so a worker
        # listens only when it can answer: no 503 "still loading" from a worker that started late
        own = Path(tempfile.mkdtemp(prefix="worker-", dir=downloads))
        _run_one(source, config, sock, own, load_first=True)
    except LockgateError as exc:
        _log.error("%s", exc)
        raise SystemExit(exc.exit_code) from None


def serve(config: ServeConfig) -> None:
    """Resolve, verify and serve ``config.model_uri`` (and the deployments) until SIGTERM/SIGINT."""
    if not config.model_uri and not config.has_deployments:
        raise UserError(
            "nothing to serve",
            hint="pass a MODEL_URI, --deployment SPEC.yaml, or --store URL (deployments come over the "
            "admin API)",
        )
    with _sigterm_exits(), tempfile.TemporaryDirectory(prefix="lockgate-serve-") as scratch:
        downloads = Path(scratch)
        source = None
        if config.model_uri:
            source = resolve_source(
                config.model_uri,
                expected_sha256=config.sha256,
                allow_unverified=config.allow_unverified,
                download_dir=downloads / "model",
                name=config.name,
            )
            if says_info(config.log_level):
                print(format_line(describe_source(source), config.log_format), file=sys.stderr, flush=True)
        if config.workers == 1:
            _run_one(source, config, _bind(config.host, config.port, reuse_port=False), downloads)
            return
        _serve_workers(source, config, downloads)


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """SIGTERM outside uvicorn's own handling (while a model downloads) unwinds like an exit
    (code 143), so the temporary folder is removed; uvicorn installs its handler while it runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(sig: int, _: FrameType | None) -> None:
        raise SystemExit(128 + sig)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve_workers(source: ModelSource | None, config: ServeConfig, downloads: Path) -> None:
    metrics_dir = tempfile.mkdtemp(prefix="lockgate-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    context = multiprocessing.get_context("spawn")
    processes = []
    # bound (not listening) only to fail here, with a clear message, when the port is taken
    probe = _bind(config.host, config.port, reuse_port=True)
    for _ in range(config.workers):
        process = context.Process(target=_worker_main, args=(source, config, downloads), daemon=False)
        process.start()
        processes.append(process)

    def forward(sig: int, _: FrameType | None) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, sig)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for process in processes:
            process.join()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        probe.close()
        _cleanup_dir(metrics_dir)
    failed = [p.exitcode for p in processes if p.exitcode not in (0, None)]
    if failed:
        raise ServiceUnavailable(f"{len(failed)} worker(s) exited with codes {failed}")


class ServerHandle:
    """A server running in a background thread; ``stop()`` drains it. A context manager."""

    def __init__(self, app: ServingApp, server: Any, thread: threading.Thread, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server = server
        self._thread = thread

    def stop(self, timeout_s: float = 30.0) -> None:
        self.app.is_draining = True
        self._server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run_server_in_thread(
    app: ServingApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    wait_ready_s: float = 120.0,
    log_level: str = "warning",
) -> ServerHandle:
    """Serve ``app`` from a daemon thread (port 0: a free one) and wait until it is ready.

    Example::

        handle = run_server_in_thread(build_app(resolve_source("models:/fraud@champion")))
        httpx.post(handle.url + "/invocations", json={...})
        handle.stop()
    """
    import uvicorn

    sock = _bind(host, port, reuse_port=False)
    bound_port = int(sock.getsockname()[1])
    config = ServeConfig("", host=host, port=bound_port, log_level=log_level)
    server = uvicorn.Server(_uvicorn_config(app, config))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="lockgate-server", daemon=True
    )
    thread.start()
    handle = ServerHandle(app, server, thread, bound_port)
    deadline = time.monotonic() + wait_ready_s
    while time.monotonic() < deadline:
        if app.load_error is not None:
            handle.stop()
            error = app.load_error
            if isinstance(error, LockgateError):
                raise error
            raise ServiceUnavailable(f"the model failed to load: {error}") from error
        if server.started and app.is_ready:
            return handle
        if not thread.is_alive():
            raise ServiceUnavailable("the server thread stopped before it was ready")
        time.sleep(0.01)
    handle.stop()
    raise ServiceUnavailable(f"the server was not ready after {wait_ready_s:.0f} s")


def _cleanup_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        for child in Path(path).iterdir():
            child.unlink()
        Path(path).rmdir()
