"""The Ray Serve backend: ``lockgate serve --backend ray`` (extra ``lockgate[ray]``).

The same app, the same router and the same controller as one process; only where the models run
changes. The ingress is one Ray Serve deployment running :class:`~lockgate.serving.app.ServingApp`
(mounted with ``@serve.ingress``) and its :class:`~lockgate.serving.deployment.DeploymentManager`;
each variant of each rollout is its own Ray Serve application (one deployment,
:class:`VariantReplica`) with the replicas or autoscaling its spec asks for, batching with Ray
Serve's ``@serve.batch``. The ingress routes a request as always, then calls the chosen variant
by handle (:class:`RayVariant`). Ray does placement, replicas and autoscaling; lockgate decides:
:class:`RayBackend` is the :class:`~lockgate.serving.backend.Backend` that loads a variant as an
application and resizes it when a rollout asks (the rolling strategy's replica counts).

::

    client ─HTTP─▶ Ray Serve proxy ─▶ ingress replica: ServingApp + router + controller
                                          │ handle.infer.remote(inputs)
                                          ├──▶ app "lockgate.fraud.stable": VariantReplica × N
                                          └──▶ app "lockgate.fraud.canary": VariantReplica × M
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

import ray as _ray_module
import ray.serve as _serve_module

import lockgate
import lockgate.errors
from lockgate.errors import LockgateError, ServiceUnavailable, UserError, ValidationError
from lockgate.rollout.spec import VariantScaling
from lockgate.serving.app import ServingApp
from lockgate.serving.batcher import concat_inputs, split_outputs
from lockgate.serving.protocol import InferenceRequest, ModelInput, Outputs
from lockgate.serving.runtimes import FastPath
from lockgate.serving.server import (
    ServeConfig,
    build_app,
    build_deployments,
    check_safe_to_load,
    load_variant,
)
from lockgate.serving.signature import Signature
from lockgate.serving.source import resolve_source
from lockgate.serving.variant import ServingPolicy, Variant

__all__ = [
    "DEFAULT_REPLICA_CPUS",
    "RayBackend",
    "RayOptions",
    "RayVariant",
    "RemotePredictor",
    "VariantReplica",
    "ingress_app",
    "replica_options",
    "serve_ray",
    "start_ray",
    "variant_app_name",
]

_log = logging.getLogger("lockgate.serving")

# Ray's own type hints cover part of its API (serve.deployment's options, serve.batch on methods
# with several arguments are not expressible): the two modules are used untyped, here only.
ray_api: Any = _ray_module
serve: Any = _serve_module

DEFAULT_REPLICA_CPUS = 0.25
"""What one replica reserves unless the spec says: four share a core, so a laptop runs a rollout."""

INGRESS_MAX_ONGOING = 1024
"""Requests the ingress replica takes at once: beyond them Serve's proxy queues (then 503s)."""

# environment the replicas need to find the same models and stores as the command that started them
_PASSED_ENV = (
    "LOCKGATE_HOME",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "MLFLOW_ENABLE_ASYNC_LOGGING",
)


@dataclass(frozen=True)
class RayOptions:
    """How lockgate runs on Ray: ``address`` of a cluster (None: start one here with ``num_cpus``),
    the Serve application ``prefix`` (ingress name; variants are ``prefix.deployment.variant``) and
    what the ingress and each replica reserve."""

    address: str | None = None
    num_cpus: int | None = None
    prefix: str = "lockgate"
    ingress_cpus: float = DEFAULT_REPLICA_CPUS
    replica_cpus: float = DEFAULT_REPLICA_CPUS

    def __post_init__(self) -> None:
        if self.num_cpus is not None and self.num_cpus <= 0:
            raise UserError(f"--ray-cpus must be > 0, got {self.num_cpus}", hint="e.g. --ray-cpus 2")
        if self.address is not None and self.num_cpus is not None:
            raise UserError(
                "--ray-cpus applies to a Ray started here, not to the cluster at --ray-address",
                hint="drop --ray-cpus: the cluster's own resources are used",
            )
        for what, value in (("ingress_cpus", self.ingress_cpus), ("replica_cpus", self.replica_cpus)):
            if value <= 0:
                raise UserError(f"{what} must be > 0, got {value}", hint="e.g. 0.25 (a quarter of a core)")


# ---------------------------------------------------------------------- pure parts


def variant_app_name(prefix: str, deployment: str, variant: str) -> str:
    """The Ray Serve application that serves one variant of one deployment."""
    return f"{prefix}.{deployment}.{variant}"


def replica_options(scaling: VariantScaling, policy: ServingPolicy, *, replica_cpus: float) -> dict[str, Any]:
    """Ray Serve deployment options for a variant: its replicas or autoscaling range, the CPUs each
    replica reserves, and how many requests one replica takes at once (enough to fill a batch)."""
    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": scaling.num_cpus if scaling.num_cpus is not None else replica_cpus},
        "max_ongoing_requests": max(2 * policy.max_batch_size, 8),
        # a model that cannot load fails the deployment at once, with its error, instead of retrying
        "max_constructor_retry_count": 1,
        # a retired replica looks for its last in-flight request every 0.2 s, not every 2 s
        "graceful_shutdown_wait_loop_s": 0.2,
    }
    if scaling.is_autoscaling:
        autoscaling: dict[str, Any] = {
            "min_replicas": scaling.min_replicas,
            "max_replicas": scaling.max_replicas,
            "initial_replicas": max(scaling.min_replicas or 0, 1),
        }
        if scaling.target_ongoing_requests is not None:
            autoscaling["target_ongoing_requests"] = scaling.target_ongoing_requests
        options["autoscaling_config"] = autoscaling
    else:
        options["num_replicas"] = scaling.replicas or 1
    return options


def _error_of(exc: BaseException) -> tuple[str, str, str | None, Any]:
    """An error as plain values that cross a process boundary: (class name, message, hint, detail)."""
    if isinstance(exc, LockgateError):
        return type(exc).__name__, exc.message, exc.hint, exc.detail
    if isinstance(exc, ValueError | TypeError | KeyError):
        # the same rule as one process: a model that refuses an input that passed the signature
        return "ValidationError", f"the model rejected the input: {exc}", None, None
    return "", f"{type(exc).__name__}: {exc}", None, None


def _raise_error(error: tuple[str, str, str | None, Any], model_name: str) -> None:
    kind, message, hint, detail = error
    cls = getattr(lockgate.errors, kind, None) if kind else None
    if isinstance(cls, type) and issubclass(cls, LockgateError):
        if cls is ValidationError and hint is None:
            message = f"model '{model_name}' {message.removeprefix('the model ')}"
            hint = "check the values against GET /v2/models/{name} (the signature)"
        raise cls(message, hint=hint, detail=detail)
    # not a user error: the model failed, which the app answers 500 and counts as an error
    raise RuntimeError(f"model '{model_name}' failed on Ray Serve: {message}")


# ---------------------------------------------------------------------- the variant replicas


@dataclass(frozen=True)
class _LoadSettings:
    """What a replica needs to load its model the way ``lockgate serve`` would."""

    policy: ServingPolicy
    fast_path: FastPath
    threads: int
    allow_unverified: bool
    allow_unsafe_load: bool


class VariantReplica:
    """One copy of a variant's model in a Ray Serve replica; concurrent requests are batched by
    ``@serve.batch`` (the spec's ``max_batch_size`` and ``max_wait_ms``) into one model call."""

    def __init__(self, uri: str, variant: str, settings: _LoadSettings) -> None:
        named = None if uri.startswith("models:/") else variant
        source = resolve_source(uri, allow_unverified=settings.allow_unverified, name=named)
        self.variant = load_variant(
            source,
            policy=settings.policy,
            fast_path=settings.fast_path,
            threads=settings.threads,
            allow_unsafe=settings.allow_unsafe_load,
        )
        self._is_inline = self.variant.is_inline
        self.infer.set_max_batch_size(settings.policy.max_batch_size)
        self.infer.set_batch_wait_timeout_s(settings.policy.max_wait_ms / 1000.0)

    def describe(self) -> dict[str, Any]:
        """What the ingress needs to decode requests and encode answers without the model."""
        predictor = self.variant.predictor
        return {
            "model_name": self.variant.model_name,
            "model_version": self.variant.model_version,
            "runtime": predictor.runtime,
            "signature": predictor.signature,
            "primary_output": predictor.primary_output,
            "is_table_output": predictor.is_table_output,
            "warmup_ms": self.variant.warmup_ms,
        }

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)  # type: ignore[untyped-decorator]
    async def infer(
        self, inputs: list[ModelInput], row_counts: list[int]
    ) -> list[tuple[Outputs | None, tuple[str, str, str | None, Any] | None]]:
        """Score a batch of requests in one model call: each gets (its outputs, None) or (None, the
        error), so a refused input is the client's 422 and a failing model a 500, as in one process."""
        predict = self.variant.predictor.predict
        try:
            batch = concat_inputs(inputs)
            outputs = predict(batch) if self._is_inline else await asyncio.to_thread(predict, batch)
            parts = split_outputs(outputs, row_counts)
        # the model's failure is each request's answer, told to the ingress as plain values
        except Exception as exc:  # noqa: BLE001
            error = _error_of(exc)
            return [(None, error) for _ in inputs]
        return [(part, None) for part in parts]


# ---------------------------------------------------------------------- the ingress side


@dataclass
class RemotePredictor:
    """A variant's model as the ingress sees it: the signature and output form, scored by handle."""

    handle: Any
    runtime: str
    signature: Signature
    primary_output: str | None
    is_table_output: bool

    def load(self) -> None:
        """Loaded in the replicas."""

    def predict(self, inputs: ModelInput) -> Outputs:
        """Score one batch through a replica (blocking; the request path uses the async call)."""
        result, error = self.handle.infer.remote(inputs, int(inputs.shape[0])).result()
        if error is not None:
            _raise_error(error, "remote")
        assert result is not None
        return dict(result)


_Answer = tuple["Outputs | None", "tuple[str, str, str | None, Any] | None"]


@dataclass
class RayVariant(Variant):
    """A variant whose model runs in Ray Serve replicas: the app records its statistics as for any
    variant. Requests that arrive together are sent as one call by handle (``@serve.batch`` here
    too, several calls in flight so that every replica has work): one hop per batch, not per
    request; the replicas batch again across calls."""

    handle: Any = None
    app_name: str = ""
    max_in_flight: int = 8
    uri: str = ""  # what its replicas load, under ``variant_name`` (to deploy them again, resized)
    variant_name: str = ""
    _send: Any = None

    def start(self, on_batch: Callable[[int, float], None] | None = None) -> None:
        """Make this variant's own batch queue (inside the running event loop)."""
        if self._send is not None:
            return
        handle = self.handle

        async def send(inputs: list[ModelInput], row_counts: list[int]) -> list[_Answer]:
            started = time.perf_counter()
            result, error = await handle.infer.remote(concat_inputs(inputs), sum(row_counts))
            if on_batch is not None:
                on_batch(len(inputs), time.perf_counter() - started)
            if error is not None:
                return [(None, error) for _ in inputs]
            try:
                parts = split_outputs(result, row_counts)
            except LockgateError as exc:
                return [(None, _error_of(exc)) for _ in inputs]
            return [(part, None) for part in parts]

        self._send = serve.batch(
            max_batch_size=self.policy.max_batch_size,
            batch_wait_timeout_s=0.0,
            max_concurrent_batches=self.max_in_flight,
        )(send)

    async def stop(self) -> None:
        """Delete the variant's Ray Serve application (its replicas go with it)."""
        if self.app_name:
            name, self.app_name = self.app_name, ""
            await asyncio.to_thread(serve.delete, name, _blocking=False)

    async def infer(self, request: InferenceRequest) -> Outputs:
        if self._send is None:
            raise UserError(f"model '{self.key}' is not started")
        result, error = await self._send(request.inputs, request.n_rows)
        if error is not None:
            _raise_error(error, self.model_name)
        return dict(result)


# Ray Serve builds a deployment's config through process-global pickling state (registering and
# unregistering modules to pickle by value): two threads doing it at once fail. Only the submit is
# serialized; the replicas of several variants start at the same time.
_DEPLOY_LOCK = threading.Lock()
# Ray Serve registers and unregisters modules for pickling by value process-wide, also from its own
# thread when an application's config changes (a deleted variant): a deploy that overlaps it fails
# with "... is not registered for pickle by value". Nothing was deployed then: it is tried again.
_DEPLOY_ATTEMPTS = 3


def _is_pickle_registry_race(exc: ValueError) -> bool:
    return "registered for pickle by value" in str(exc)


def _wait_running(name: str, timeout_s: float = 600.0) -> None:
    """Wait until the Serve application ``name`` runs; its failure message otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        app = serve.status().applications.get(name)
        state = str(app.status.value) if app is not None else "NOT_STARTED"
        if state == "RUNNING":
            return
        if state in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise RuntimeError(f"application {name} is {state}: {app.message}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"application {name} was not running after {timeout_s:.0f} s ({state})")
        time.sleep(0.1)


class RayBackend:
    """Each variant a Ray Serve application with its own replicas: several load at once (each
    waits on its replicas starting), and a rollout's replica counts resize them."""

    has_replicas = True
    loads_concurrently = True

    def __init__(self, config: ServeConfig, ray: RayOptions) -> None:
        self.config = config
        self.ray = ray
        self._settings = _LoadSettings(
            config.policy, config.fast_path, config.threads, config.allow_unverified, config.allow_unsafe_load
        )

    def load(self, deployment: str, variant: str, uri: str, scaling: VariantScaling) -> Variant:
        """Load a variant as a Ray Serve application (blocking, in the manager's loading thread).

        The model is resolved and checked here first, so a wrong URI or an unverified pickle is the
        same clear error as in one process, before any replica starts.
        """
        config = self.config
        named = None if uri.startswith("models:/") else variant
        source = resolve_source(uri, allow_unverified=config.allow_unverified, name=named)
        check_safe_to_load(source, allow_unsafe=config.allow_unsafe_load)
        name = variant_app_name(self.ray.prefix, deployment, variant)
        try:
            handle = self._deploy(name, uri, variant, scaling)
            _wait_running(name)
            info = handle.describe.remote().result()
        except Exception as exc:  # noqa: BLE001 - Ray's many failures all mean "did not start"
            raise ServiceUnavailable(
                f"variant '{variant}' did not start on Ray Serve: {str(exc)[:2000]}",
                retry_after_s=10.0,
            ) from None
        predictor = RemotePredictor(
            handle, info["runtime"], info["signature"], info["primary_output"], info["is_table_output"]
        )
        _log.info("variant %s/%s runs as Ray Serve application %s", deployment, variant, name)
        return RayVariant(
            info["model_name"],
            info["model_version"],
            predictor,
            config.policy,
            key=f"{deployment}/{variant}",
            warmup_ms=info["warmup_ms"],
            handle=handle,
            app_name=name,
            # enough calls in flight to keep every replica busy while the next batch gathers
            max_in_flight=2 * (scaling.max_replicas or scaling.replicas or 1) + 2,
            uri=uri,
            variant_name=variant,
        )

    def resize(self, variant: Variant, scaling: VariantScaling) -> None:
        """Deploy the variant's application again with ``scaling``'s replicas: the same code and
        arguments, so Serve only adds or removes replicas (the running ones keep serving)."""
        if not isinstance(variant, RayVariant) or not variant.app_name:
            return  # stopped meanwhile: nothing runs to resize
        self._deploy(variant.app_name, variant.uri, variant.variant_name, scaling)
        _log.info("variant %s resized to %s", variant.key, scaling.to_dict())

    def _deploy(self, name: str, uri: str, variant: str, scaling: VariantScaling) -> Any:
        options = replica_options(scaling, self.config.policy, replica_cpus=self.ray.replica_cpus)
        for attempt in range(_DEPLOY_ATTEMPTS):
            try:
                with _DEPLOY_LOCK:
                    replica = serve.deployment(VariantReplica, name="variant").options(**options)
                    # one version per application: a new replica count is an update in place
                    replica = replica.options(version=name, _internal=True)
                    return serve._run(
                        replica.bind(uri, variant, self._settings),
                        name=name,
                        route_prefix=None,
                        _blocking=False,
                    )
            except ValueError as exc:
                if not _is_pickle_registry_race(exc) or attempt + 1 == _DEPLOY_ATTEMPTS:
                    raise
                _log.warning(
                    "Ray Serve's pickle registry changed under a deploy of %s; deploying again", name
                )
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")


class _Ingress:
    """The ingress replica: lockgate's own app, whose variants are Ray Serve applications."""

    def __init__(self, config: ServeConfig, ray: RayOptions) -> None:
        self.config = config
        self.ray = ray

    def __serve_build_asgi_app__(self) -> Any:
        manager = build_deployments(self.config, backend=RayBackend(self.config, self.ray))
        return _OneRequestId(build_app(config=self.config, deployments=manager))


class _OneRequestId:
    """Ray Serve's proxy adds ``x-request-id`` to every answer (the id it put in the request, which
    the app echoes): the app's own copy is dropped, so a client reads one id, not a list of two."""

    def __init__(self, app: ServingApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)

        async def send_one(message: Any) -> None:
            if message["type"] == "http.response.start" and sent is not None:
                message["headers"] = [
                    (k, v) for k, v in message["headers"] if not (k == b"x-request-id" and v == sent)
                ]
            await send(message)

        await self.app(scope, receive, send_one)


def ingress_app(config: ServeConfig, ray: RayOptions) -> Any:
    """The Ray Serve application of the ingress (``serve.run`` it with ``route_prefix="/"``)."""
    ingress = serve.deployment(serve.ingress()(_Ingress), name="ingress")
    # the ingress mostly awaits its variants: many requests at once (Serve's default is 5)
    return ingress.options(
        ray_actor_options={"num_cpus": ray.ingress_cpus},
        num_replicas=1,
        max_ongoing_requests=INGRESS_MAX_ONGOING,
        graceful_shutdown_wait_loop_s=0.2,
    ).bind(config, ray)


# ---------------------------------------------------------------------- the command


def start_ray(options: RayOptions, env: Mapping[str, str] | None = None) -> None:
    """Connect to the cluster at ``options.address``, or start Ray here (no dashboard)."""
    ray = ray_api
    if ray.is_initialized():
        return
    env = os.environ if env is None else env
    home = env.get("LOCKGATE_HOME") or os.path.join(os.getcwd(), ".lockgate")
    passed = {name: env[name] for name in _PASSED_ENV if env.get(name)}
    passed["LOCKGATE_HOME"] = os.path.abspath(home)  # replicas need not share our working directory
    # replicas import the lockgate this process runs (a checkout may shadow an installed one)
    here = os.path.dirname(os.path.dirname(os.path.abspath(lockgate.__file__)))
    passed["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    runtime_env = {"env_vars": passed}
    if options.address is not None:
        ray.init(address=options.address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(
            num_cpus=options.num_cpus,
            include_dashboard=False,
            runtime_env=runtime_env,
            log_to_driver=False,
        )


def serve_ray(config: ServeConfig, options: RayOptions) -> None:
    """Serve ``config``'s deployments on Ray Serve until SIGTERM/SIGINT, then take them down."""
    if config.model_uri:
        raise UserError(
            "--backend ray serves deployments, not a single MODEL_URI",
            hint="write a deployment spec (docs/rollouts.md) and pass --deployment SPEC.yaml, or use "
            "--backend embedded for one model",
        )
    if not config.has_deployments:
        raise UserError("nothing to serve", hint="pass --deployment SPEC.yaml or --store URL")
    if config.workers != 1:
        raise UserError(
            "--workers is for the embedded backend; on Ray each variant has its own replicas",
            hint="drop --workers and set scaling.VARIANT.replicas (or autoscaling) in the spec",
        )
    start_ray(options)
    stopped = threading.Event()

    def stop(_sig: int, _frame: FrameType | None) -> None:
        stopped.set()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        serve.start(http_options={"host": config.host, "port": config.port})
        serve.run(ingress_app(config, options), name=options.prefix, route_prefix="/")
        _log.warning("lockgate on Ray Serve at http://%s:%d", config.host, config.port)
        stopped.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _shutdown(options)


def _shutdown(options: RayOptions) -> None:
    """Take lockgate's applications down: all of Serve and Ray when they were started here, else
    the ingress (its shutdown deletes its variants) and any variant application left behind."""
    if options.address is None:
        serve.shutdown()
        ray_api.shutdown()
        return
    serve.delete(options.prefix)
    for name in list(serve.status().applications):
        if name.startswith(f"{options.prefix}."):
            serve.delete(name, _blocking=False)
