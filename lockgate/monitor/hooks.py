"""Monitoring features on the deployment loop's tick: the hook protocol, and the hooks a server runs.

The deployment loop (:class:`~lockgate.serving.deployment.DeploymentManager`) knows nothing of
alerts, drift, capture or retraining: each is a :class:`MonitorHook` that it calls when a
deployment's variants are loaded (:meth:`~MonitorHook.attach`: give the request path what the hook
samples), after each controller tick (:meth:`~MonitorHook.tick`: fold, write, send; blocking work
in a worker thread, never on the request path) and when the server stops (:meth:`~MonitorHook.close`).
:func:`monitor_hooks` builds the set a server's settings ask for, wired to each other (a drift and
a finished retraining run are alerts; a drift starts a retraining run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from lockgate.monitor.alerts import AlertHook, AlertSender
from lockgate.monitor.capture import DEFAULT_KEEP, CaptureHook
from lockgate.monitor.live import DriftHook
from lockgate.monitor.reference import Reference
from lockgate.monitor.retrain import RetrainHook, RetrainTrigger
from lockgate.rollout.store import Store

if TYPE_CHECKING:
    # types only: the serving package imports this module, so it cannot import serving back
    from lockgate.serving.live import LiveDeployment

__all__ = ["MonitorHook", "monitor_hooks"]


class MonitorHook(Protocol):
    """A monitoring feature on the deployment loop."""

    def attach(self, live: LiveDeployment, previous: LiveDeployment | None) -> None:
        """``live``'s variants were loaded (``previous``: what served the name before, if anything)."""
        ...

    async def tick(self, deployments: Mapping[str, LiveDeployment], store: Store) -> None:
        """After a controller tick, on the event loop (blocking work goes to a worker thread)."""
        ...

    async def close(self, deployments: Mapping[str, LiveDeployment], store: Store) -> None:
        """The server stops, after its last tick: write what waits, stop what runs."""
        ...


def monitor_hooks(
    *,
    alerts: AlertSender | None = None,
    drift_reference: Reference | None = None,
    drift_sample_every: int = 10,
    retrain: RetrainTrigger | None = None,
    capture_every: int = 0,
    capture_keep: int = DEFAULT_KEEP,
) -> list[MonitorHook]:
    """The hooks these settings turn on, in the order they run at each tick.

    ``alerts``: an alert when a rollout rolls back or halts, a variant drifts or a retraining run
    ends (each also an ``alert`` audit event). ``drift_reference``: live drift, one request in
    ``drift_sample_every`` sketched per variant; a drifted variant is a ``drift`` audit event.
    ``retrain`` (needs ``drift_reference``): a retraining pipeline run on a variant's first drift.
    ``capture_every`` (0: off): one answered request in that many kept in the store for
    ``lockgate replay``, the newest ``capture_keep``.
    """
    hooks: list[MonitorHook] = []
    alert = AlertHook(alerts) if alerts is not None else None
    if capture_every:
        hooks.append(CaptureHook(capture_every, keep=capture_keep))
    retraining = RetrainHook(retrain, on_done=alert.note if alert else None) if retrain else None
    if drift_reference is not None:
        listeners = [hook.note for hook in (alert, retraining) if hook is not None]
        hooks.append(DriftHook(drift_reference, sample_every=drift_sample_every, listeners=listeners))
    if alert is not None:
        hooks.append(alert)
    if retraining is not None:
        hooks.append(retraining)
    return hooks
