"""Alerts: a rollback, a sample-ratio-mismatch halt or a drift breach, posted to a webhook.

The decision is pure: :func:`pending_alert` reads a deployment's audit log and returns the
alert still owed, if any: the newest ``rollback`` or ``halt`` event that no ``alert`` event names
yet (so a restart or a second look does not send it twice) and that is recent. The shell is
:class:`WebhookSender`: a bounded queue and one background thread that POSTs JSON with a
timeout, in the format the receiver takes (:func:`webhook_body`: Slack's ``text`` and
``blocks``, which Mattermost and Rocket.Chat take too, or lockgate's own generic document).
Nothing here runs on the request path; a full queue drops the alert and counts it; a delivery
that fails (no answer, a 5xx or a 429) is tried again a few times with a growing pause, then
logged and counted as failed. :class:`AlertHook` runs it on the deployment loop's tick.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from lockgate.errors import UserError
from lockgate.rollout.controller import Phase, RecordEvent
from lockgate.rollout.store import AuditEvent, Store

if TYPE_CHECKING:
    # types only: the serving package imports this module, so it cannot import serving back
    from lockgate.serving.live import LiveDeployment

__all__ = [
    "ALERT_ACTION",
    "Alert",
    "AlertHook",
    "AlertSender",
    "WebhookSender",
    "alert_event",
    "check_webhook_url",
    "pending_alert",
    "webhook_body",
    "webhook_format",
]

_log = logging.getLogger("lockgate.monitor")

ALERT_ACTION = "alert"
ALERT_KINDS = {"rollback": "rollback", "halt": "srm_halt", "drift": "drift", "retrain_done": "retrain"}
"""Audit actions that raise an alert, and the alert's kind."""
MAX_AGE_S = 3600.0
"""An event older than this is history, not news: no alert for it (say, when alerts are first turned on)."""


@dataclass(frozen=True)
class Alert:
    """One alert, as the webhook receives it (:meth:`to_dict`)."""

    deployment: str
    kind: str
    event_id: int
    at: float
    actor: str
    reason: str
    from_phase: str
    to_phase: str
    numbers: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """One line for a chat channel (Slack and Mattermost show a ``text`` field)."""
        what = {
            "rollback": "rolled back",
            "srm_halt": "halted (sample-ratio mismatch)",
            "drift": "drifted",
            "retrain": "ran its retraining pipeline",
        }.get(self.kind, self.kind)
        return f"lockgate: deployment '{self.deployment}' {what} by {self.actor}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": "lockgate",
            "kind": self.kind,
            "deployment": self.deployment,
            "event_id": self.event_id,
            "at": self.at,
            "actor": self.actor,
            "reason": self.reason,
            "from_phase": self.from_phase,
            "to_phase": self.to_phase,
            "numbers": dict(self.numbers),
            "text": self.text,
        }


def pending_alert(name: str, events: Sequence[AuditEvent], *, now: float) -> Alert | None:
    """The alert owed for deployment ``name``'s audit log, or None (pure)."""
    alerted = {
        int(number)
        for e in events
        if e.action == ALERT_ACTION and (number := e.numbers.get("event_id")) is not None
    }
    for event in reversed(events):
        kind = ALERT_KINDS.get(event.action)
        if kind is None:
            continue
        if event.id in alerted or now - event.at > MAX_AGE_S:
            return None
        return Alert(
            name,
            kind,
            event.id,
            event.at,
            event.actor,
            event.reason,
            event.from_phase,
            event.to_phase,
            dict(event.numbers),
        )
    return None


def alert_event(alert: Alert, *, now: float, destination: str) -> RecordEvent:
    """The audit entry that says the alert went out (and which event it was about)."""
    return RecordEvent(
        at=now,
        actor="monitor",
        action=ALERT_ACTION,
        reason=f"{alert.kind} alert sent to {destination}: {alert.reason}",
        from_phase=alert.to_phase,
        to_phase=alert.to_phase,
        numbers={"event_id": float(alert.event_id)},
    )


FORMATS = ("auto", "slack", "generic")


def webhook_format(url: str, requested: str = "auto") -> str:
    """The body format for ``url``: ``slack`` or ``generic`` as asked; ``auto`` picks ``slack`` for
    Slack's own hooks and ``generic`` (lockgate's document, which has a ``text`` too) elsewhere."""
    if requested not in FORMATS:
        raise UserError(
            f"alert format '{requested}' is unknown", hint="use auto, slack (Slack, Mattermost) or generic"
        )
    if requested != "auto":
        return requested
    host = url.split("/", 3)[2].split(":", 1)[0].lower() if url.count("/") >= 2 else ""
    return "slack" if host == "hooks.slack.com" else "generic"


def webhook_body(alert: Alert, body_format: str) -> dict[str, Any]:
    """What is POSTed: Slack's incoming-webhook message, or lockgate's generic document (pure)."""
    if body_format != "slack":
        return alert.to_dict()
    shown = ", ".join(f"{k}={v:g}" for k, v in list(alert.numbers.items())[:8] if v is not None)
    return {
        "text": alert.text,  # the notification and any client without blocks
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{alert.text}*"}},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"{alert.kind} · {alert.from_phase} → {alert.to_phase} · event "
                        f"{alert.event_id}" + (f" · {shown}" if shown else ""),
                    }
                ],
            },
        ],
    }


def check_webhook_url(url: str) -> str:
    """``url`` if it is an http(s) URL; a UserError naming the fix otherwise."""
    if not url.startswith(("http://", "https://")) or len(url) < len("http://x"):
        raise UserError(
            f"--alert-webhook must be an http:// or https:// URL, got '{url}'",
            hint="e.g. --alert-webhook https://hooks.slack.com/services/T000/B000/XXXX",
        )
    return url


class AlertSender(Protocol):
    """Where alerts go; :class:`WebhookSender` is the real one."""

    @property
    def destination(self) -> str:
        """Where alerts go, as the audit log names it (no secrets)."""
        ...

    def send(self, alert: Alert) -> bool:
        """Queue ``alert`` without waiting; False when it was dropped."""
        ...

    def close(self) -> None: ...


class WebhookSender:
    """POSTs alerts as JSON to ``url`` from one daemon thread, ``timeout_s`` per post, in
    ``body_format`` (see :func:`webhook_format`).

    A post that gets no answer, a 5xx or a 429 is tried up to ``attempts`` times, waiting
    ``backoff_s``, then twice that, and so on; another 4xx is not tried again (the receiver
    refuses it). ``sent``, ``failed``, ``retried`` and ``dropped`` count what happened (dropped:
    the queue of ``max_queue`` was full)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_queue: int = 100,
        body_format: str = "auto",
        attempts: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.url = check_webhook_url(url)
        self.body_format = webhook_format(self.url, body_format)
        self.timeout_s = timeout_s
        self.max_queue = max_queue
        if attempts < 1:
            raise UserError(f"attempts must be at least 1, got {attempts}", hint="e.g. 3")
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self.dropped = 0
        self._queue: queue.Queue[Alert | None] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def destination(self) -> str:
        # the path of a webhook URL is often its secret: the audit log keeps only the host
        return self.url.split("/", 3)[2] if self.url.count("/") >= 2 else self.url

    def send(self, alert: Alert) -> bool:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lockgate-alerts", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.dropped += 1
            _log.warning(
                "alert queue full (%d): dropped the %s alert of '%s'",
                self.max_queue,
                alert.kind,
                alert.deployment,
            )
            return False
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (up to ``timeout_s``), then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        thread.join(timeout_s)
        self._thread = None

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            self._post(alert)

    def _post(self, alert: Alert) -> None:
        body = orjson.dumps(webhook_body(alert, self.body_format))
        for attempt in range(self.attempts):
            if attempt:
                self.retried += 1
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s)
                self.url,
                data=body,
                headers={"content-type": "application/json", "user-agent": "lockgate-alerts"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310
                    answer.read()
            # a webhook that is down or slow must never take the server with it: log, count, go on
            except (urllib.error.URLError, OSError, ValueError) as exc:
                error: Exception = exc
                status = None
                if isinstance(exc, urllib.error.HTTPError):
                    status = exc.code
                    exc.close()  # it holds the answer's socket
                if status is not None and status < 500 and status != 429:
                    break  # the receiver refuses this body: sending it again will not help
                continue
            self.sent += 1
            return
        self.failed += 1
        _log.warning(
            "could not post the %s alert of '%s' to %s after %d attempt(s): %s",
            alert.kind,
            alert.deployment,
            self.destination,
            attempt + 1,
            error,
        )


class AlertHook:
    r"""Alerts on the deployment loop's tick: a deployment that rolled back or halted since the last
    look, or one another hook :meth:`note`\ d (a drift, a finished retraining run), is looked up in
    the audit log, and the alert still owed (:func:`pending_alert`) is sent and audited."""

    def __init__(self, sender: AlertSender) -> None:
        self.sender = sender
        self._due: set[str] = set()
        self._phases: dict[str, str] = {}

    def note(self, name: str, variant: str | None = None) -> None:
        """Deployment ``name`` has news in its audit log (any thread)."""
        self._due.add(name)

    def attach(self, live: LiveDeployment, previous: LiveDeployment | None) -> None:
        """Nothing to sample on the request path."""

    async def tick(self, deployments: Mapping[str, LiveDeployment], store: Store) -> None:
        for name, live in list(deployments.items()):
            if Phase(live.phase).is_alarm and live.phase != self._phases.get(name):
                self._due.add(name)
            self._phases[name] = live.phase
        for name in sorted(self._due):
            # discarded before the look: news noted meanwhile (another thread) stays due
            self._due.discard(name)
            events = await asyncio.to_thread(store.events, name)
            alert = pending_alert(name, events, now=time.time())
            if alert is None:
                continue
            record = alert_event(alert, now=time.time(), destination=self.sender.destination)
            await asyncio.to_thread(store.append_events, name, [record])
            self.sender.send(alert)
            _log.warning("%s", alert.text)

    async def close(self, deployments: Mapping[str, LiveDeployment], store: Store) -> None:
        await self.tick(deployments, store)
        await asyncio.to_thread(self.sender.close)

    def collect(self) -> Iterator[Any]:
        """``lockgate_alerts{outcome}`` for Prometheus: sent, failed, retried, dropped."""
        from prometheus_client.core import GaugeMetricFamily

        counted = GaugeMetricFamily("lockgate_alerts", "Alerts by what became of them.", labels=["outcome"])
        for outcome in ("sent", "failed", "retried", "dropped"):
            counted.add_metric([outcome], float(getattr(self.sender, outcome, 0)))
        yield counted
