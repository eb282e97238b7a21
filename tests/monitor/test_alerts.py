from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from lockgate.errors import UserError
from lockgate.monitor.alerts import (
    Alert,
    WebhookSender,
    alert_event,
    check_webhook_url,
    pending_alert,
    webhook_body,
    webhook_format,
)
from lockgate.rollout.store import AuditEvent


def _event(number: int, action: str, *, at: float = 100.0, **numbers: float) -> AuditEvent:
    return AuditEvent(number, "churn", at, "controller", action, f"why {number}", "stepping", "x", numbers)


def test_a_rollback_is_owed_an_alert_until_an_alert_event_names_it() -> None:
    events = [_event(1, "deploy"), _event(2, "start"), _event(3, "rollback")]
    alert = pending_alert("churn", events, now=110.0)
    assert alert is not None
    assert (alert.kind, alert.event_id, alert.reason) == ("rollback", 3, "why 3")
    assert alert.to_dict()["text"] == "lockgate: deployment 'churn' rolled back by controller: why 3"
    record = alert_event(alert, now=111.0, destination="hooks.example.com")
    assert record.action == "alert" and record.numbers == {"event_id": 3.0}
    assert "hooks.example.com" in record.reason
    sent = [*events, _event(4, "alert", event_id=3.0)]
    assert pending_alert("churn", sent, now=110.0) is None


def test_a_halt_is_a_sample_ratio_alert_and_only_the_newest_event_counts() -> None:
    events = [_event(1, "rollback"), _event(2, "alert", event_id=1.0), _event(3, "deploy"), _event(4, "halt")]
    alert = pending_alert("churn", events, now=100.0)
    assert alert is not None and (alert.kind, alert.event_id) == ("srm_halt", 4)
    assert "sample-ratio mismatch" in alert.text


def test_nothing_is_owed_for_old_news_or_a_quiet_log() -> None:
    assert pending_alert("churn", [_event(1, "rollback", at=0.0)], now=10_000.0) is None
    assert pending_alert("churn", [_event(1, "deploy"), _event(2, "promote")], now=100.0) is None
    assert pending_alert("churn", [], now=100.0) is None


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com/hook", "http://"])
def test_a_webhook_must_be_an_http_url(url: str) -> None:
    with pytest.raises(UserError, match="--alert-webhook must be an http"):
        check_webhook_url(url)


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list[Any]
    delay_s = 0.0
    status = 200
    fail_first = 0  # answer 503 to this many posts first

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        type(self).bodies.append(orjson.loads(self.rfile.read(length)))
        time.sleep(self.delay_s)
        failing = len(type(self).bodies) <= self.fail_first
        self.send_response(503 if failing else self.status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Handler", (_Receiver,), {"bodies": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def _alert(event_id: int = 7) -> Alert:
    return Alert("churn", "rollback", event_id, 1.0, "alice", "p99 too high", "stepping", "rolled_back")


def test_the_sender_posts_json_to_a_real_receiver(receiver: tuple[str, type[_Receiver]]) -> None:
    url, handler = receiver
    sender = WebhookSender(url, timeout_s=2.0)
    assert sender.destination == url.split("/")[2]
    assert sender.send(_alert())
    sender.close()
    assert sender.sent == 1 and sender.failed == 0
    assert handler.bodies == [_alert().to_dict()]
    assert handler.bodies[0]["kind"] == "rollback" and handler.bodies[0]["deployment"] == "churn"


def test_a_failing_or_slow_webhook_is_counted_never_raised(
    receiver: tuple[str, type[_Receiver]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = receiver
    handler.status = 500
    sender = WebhookSender(url, timeout_s=2.0, backoff_s=0.05)
    sender.send(_alert())
    sender.close()
    assert (sender.sent, sender.failed, sender.retried) == (0, 1, 2)
    assert len(handler.bodies) == 3  # a 5xx is tried again, twice
    assert "could not post the rollback alert of 'churn'" in caplog.text
    handler.status, handler.delay_s = 200, 1.0
    slow = WebhookSender(url, timeout_s=0.2, max_queue=1, attempts=1)
    results = [slow.send(_alert(i)) for i in range(3)]
    slow.close()
    assert slow.dropped >= 1 and results.count(False) == slow.dropped
    assert slow.failed >= 1  # timed out after 0.2 s, not 1 s


def test_a_closed_port_is_a_failure() -> None:
    sender = WebhookSender("http://127.0.0.1:9/hook", timeout_s=1.0, backoff_s=0.01)
    sender.send(_alert())
    sender.close()
    assert (sender.failed, sender.retried) == (1, 2)


def test_a_delivery_is_retried_until_it_lands_and_a_refusal_is_not(
    receiver: tuple[str, type[_Receiver]],
) -> None:
    url, handler = receiver
    handler.fail_first = 2
    sender = WebhookSender(url, timeout_s=2.0, backoff_s=0.01)
    sender.send(_alert())
    sender.close()
    assert (sender.sent, sender.failed, sender.retried) == (1, 0, 2)
    assert handler.bodies == [_alert().to_dict()] * 3
    handler.bodies.clear()
    handler.fail_first, handler.status = 0, 400  # the receiver refuses the body: no point in resending
    refused = WebhookSender(url, timeout_s=2.0, backoff_s=0.01)
    refused.send(_alert())
    refused.close()
    assert (refused.sent, refused.failed, refused.retried, len(handler.bodies)) == (0, 1, 0, 1)


def test_slack_gets_text_and_blocks_and_the_format_follows_the_url(
    receiver: tuple[str, type[_Receiver]],
) -> None:
    alert = Alert("churn", "rollback", 7, 1.0, "alice", "p99 too high", "stepping", "rolled_back", {"n": 3.0})
    slack = webhook_body(alert, "slack")
    assert slack["text"] == alert.text
    assert slack["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": f"*{alert.text}*"}}
    assert "stepping → rolled_back" in slack["blocks"][1]["elements"][0]["text"]
    assert webhook_body(alert, "generic") == alert.to_dict()
    assert webhook_format("https://hooks.slack.com/services/T/B/X") == "slack"
    assert webhook_format("https://chat.example.com/hooks/abc") == "generic"
    assert webhook_format("https://hooks.slack.com/services/T/B/X", "generic") == "generic"
    with pytest.raises(UserError, match="alert format 'teams' is unknown"):
        webhook_format("https://chat.example.com/hooks/abc", "teams")
    url, handler = receiver
    sender = WebhookSender(url, timeout_s=2.0, body_format="slack")
    sender.send(alert)
    sender.close()
    assert handler.bodies == [slack]
