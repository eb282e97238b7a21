"""Monitoring on the deployment loop's tick: which hooks a server's settings turn on, how they are
wired to each other, and what the alert and capture hooks do at a tick (a real in-memory store and
real variants; the hooks end to end on a server are tests/serving/test_alerts.py, test_capture.py
and test_prediction_drift.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lockgate.monitor.alerts import Alert, AlertHook
from lockgate.monitor.capture import CaptureHook
from lockgate.monitor.hooks import monitor_hooks
from lockgate.monitor.live import DriftHook
from lockgate.monitor.reference import reference_from_frame
from lockgate.monitor.retrain import RetrainHook, RetrainTrigger
from lockgate.rollout.controller import RecordEvent, initial_state, routing_table
from lockgate.rollout.spec import parse_spec
from lockgate.rollout.store import InMemoryStore
from lockgate.serving.live import LiveDeployment
from lockgate.serving.predictor import FunctionPredictor, column_signature
from lockgate.serving.variant import Variant

SPEC = parse_spec(
    {
        "name": "churn",
        "variants": {"stable": "models:/churn/1", "next": "models:/churn/2"},
        "baseline": "stable",
        "candidate": "next",
        "strategy": {"type": "canary", "steps": [{"weight_percent": 10}]},
    }
)


@dataclass
class Outbox:
    """An alert sender that keeps what it was given."""

    sent: list[Alert] = field(default_factory=list)
    is_closed: bool = False

    @property
    def destination(self) -> str:
        return "outbox"

    def send(self, alert: Alert) -> bool:
        self.sent.append(alert)
        return True

    def close(self) -> None:
        self.is_closed = True


def _live(phase: str = "pending") -> LiveDeployment:
    predictor = FunctionPredictor(lambda x: np.zeros(len(x)), column_signature(["x"]))
    variants = {name: Variant(name, "1", predictor) for name in SPEC.variants}
    live = LiveDeployment(SPEC, variants, routing_table(initial_state(SPEC)))
    live.phase = phase
    return live


def test_no_settings_no_hooks_and_all_of_them_wired_in_tick_order(tmp_path: Path) -> None:
    assert monitor_hooks() == []
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text("version: 1\nstages: {}\n")
    reference = reference_from_frame(pd.DataFrame({"x": [0.0, 1.0, 2.0]}), dataset="train@1", digest="d")
    outbox = Outbox()
    capture, drift, alert, retrain = monitor_hooks(
        alerts=outbox, drift_reference=reference, retrain=RetrainTrigger(pipeline), capture_every=10
    )
    assert isinstance(capture, CaptureHook) and capture.every == 10
    assert isinstance(drift, DriftHook) and isinstance(alert, AlertHook) and isinstance(retrain, RetrainHook)
    # a drift is an alert and a retraining run; a finished run is an alert
    assert drift.listeners == [alert.note, retrain.note]
    assert retrain.on_done == alert.note
    assert alert.sender is outbox


def test_an_alert_is_sent_once_for_a_rollback_the_tick_sees() -> None:
    store = InMemoryStore()
    store.create_deployment(SPEC, initial_state(SPEC), now=time.time())
    rollback = RecordEvent(time.time(), "controller", "rollback", "errors", "stepping", "rolled_back")
    store.append_events("churn", [rollback])
    outbox = Outbox()
    hook = AlertHook(outbox)

    async def ticks() -> None:
        await hook.tick({"churn": _live("stepping")}, store)
        assert outbox.sent == []  # nothing to say while it steps
        live = _live("rolled_back")
        await hook.tick({"churn": live}, store)
        await hook.tick({"churn": live}, store)
        hook.note("churn")  # news from another hook: the log is read again, nothing more is owed
        await hook.close({"churn": live}, store)

    asyncio.run(ticks())
    [alert] = outbox.sent
    assert (alert.deployment, alert.kind) == ("churn", "rollback")
    assert [e.action for e in store.events("churn")] == ["rollback", "alert"]
    assert outbox.is_closed


def test_a_redeploy_keeps_the_capture_queue() -> None:
    hook = CaptureHook(5)
    first, second = _live(), _live()
    hook.attach(first, None)
    assert first.capture is not None and first.capture.every == 5
    hook.attach(second, first)
    assert second.capture is first.capture
