"""What ``lockgate serve`` is told: :class:`ServeConfig`, every option with its default, checked when
it is made (a bad value is a :class:`~lockgate.errors.UserError` naming it, before anything loads).
The CLI and ``lockgate.serving.server`` build and read it; tests and notebooks make one directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lockgate.errors import UserError
from lockgate.llm.params import check_decode_engine
from lockgate.llm.traces import DEFAULT_EXPERIMENT as DEFAULT_TRACE_EXPERIMENT
from lockgate.llm.traces import check_rate
from lockgate.monitor.alerts import check_webhook_url, webhook_format
from lockgate.monitor.capture import DEFAULT_KEEP
from lockgate.rollout.spec import DeploymentSpec
from lockgate.serving.app import DEFAULT_MAX_BODY_BYTES
from lockgate.serving.executor import RETIRE_GRACE_S
from lockgate.serving.logs import LogFormat, check_log_format
from lockgate.serving.runtimes import FastPath
from lockgate.serving.variant import ServingPolicy

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``lockgate serve`` needs. Validated on construction."""

    model_uri: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    name: str | None = None
    sha256: str | None = None
    allow_unverified: bool = False
    allow_unsafe_load: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    policy: ServingPolicy = field(default_factory=ServingPolicy)
    fast_path: FastPath = "auto"
    threads: int = 1
    decode_engine: str = "process"  # where a generative model decodes: process or thread
    log_level: str = "warning"
    graceful_timeout_s: float = 30.0
    deployments: tuple[DeploymentSpec, ...] = ()
    store_url: str | None = None
    admin_token: str | None = None
    follow_registry: bool = True
    tick_s: float = 0.25
    persist_joins: bool = False
    alert_webhook: str | None = None
    alert_format: str = "auto"  # slack, generic, or auto (slack for hooks.slack.com)
    prometheus_url: str | None = None  # where a spec's analysis.metrics are queried
    drift_reference: str | None = None
    drift_sample_every: int = 10
    retrain_pipeline: str | None = None
    retrain_cooldown_s: float = 3600.0
    expose_metrics: bool = True
    log_format: LogFormat = "text"
    access_log: bool = False
    capture_every: int = 0
    capture_keep: int = DEFAULT_KEEP
    retire_grace_s: float = RETIRE_GRACE_S  # a variant that lost its traffic answers this long
    trace_sample: float = 0.0  # share of generations recorded as MLflow traces (0: off)
    trace_experiment: str = DEFAULT_TRACE_EXPERIMENT

    @property
    def has_deployments(self) -> bool:
        return bool(self.deployments) or self.store_url is not None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UserError(f"port {self.port} is outside 0-65535")
        if self.workers < 1:
            raise UserError(f"workers must be >= 1, got {self.workers}")
        if self.max_body_bytes < 1:
            raise UserError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")
        if self.threads < 1:
            raise UserError(f"threads must be >= 1, got {self.threads}")
        check_decode_engine(self.decode_engine)
        if self.alert_webhook is not None:
            check_webhook_url(self.alert_webhook)
            webhook_format(self.alert_webhook, self.alert_format)
        if not 0 < self.graceful_timeout_s <= 3600:
            raise UserError(
                f"graceful_timeout_s must be in (0, 3600] seconds, got {self.graceful_timeout_s}",
                hint="e.g. 30",
            )
        if self.drift_sample_every < 1:
            raise UserError(f"drift_sample_every must be >= 1, got {self.drift_sample_every}", hint="e.g. 10")
        if self.retrain_pipeline is not None and self.drift_reference is None:
            raise UserError(
                "--retrain-on-drift needs --drift-reference: without a reference nothing can drift",
                hint="add --drift-reference NAME@VERSION (the training data's dataset version)",
            )
        if not self.retrain_cooldown_s >= 0:
            raise UserError(
                f"retrain_cooldown_s must be >= 0, got {self.retrain_cooldown_s}", hint="e.g. 3600"
            )
        check_log_format(self.log_format)
        check_rate(self.trace_sample)
        if self.capture_every < 0:
            raise UserError(f"capture_every must be >= 0 (0: off), got {self.capture_every}", hint="e.g. 100")
        if self.capture_keep < 1:
            raise UserError(f"capture_keep must be >= 1, got {self.capture_keep}", hint="e.g. 10000")
        if not self.tick_s > 0:
            raise UserError(f"tick_s must be > 0, got {self.tick_s}")
        if not self.retire_grace_s >= 0:
            raise UserError(f"retire_grace_s must be >= 0, got {self.retire_grace_s}", hint="e.g. 30")
        names = [spec.name for spec in self.deployments]
        if len(set(names)) != len(names):
            raise UserError(f"deployments {names} name one deployment twice", hint="give each its own name")
