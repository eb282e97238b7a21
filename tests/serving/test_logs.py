"""Logs: JSON records with the request id, the access log, and `lockgate serve --log-format json`."""

from __future__ import annotations

import io
import json
import logging
import signal
import sys
from typing import Any

import httpx
import pytest

from lockgate.errors import UserError
from lockgate.serving.logs import AccessLog, JsonFormatter, check_log_format, iso_time, log_config
from tests.support import start_server


def _record(message: str, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("lockgate.serving", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    record.created = 1796121000.25
    return record


def test_a_record_is_one_json_object_with_the_request_fields_it_carries() -> None:
    line = JsonFormatter().format(_record("queue full for %s", request_id="abc-1", status=503))
    assert "\n" not in line
    assert json.loads(line) == {
        "ts": "2026-12-01T10:30:00.250Z",
        "level": "warning",
        "logger": "lockgate.serving",
        "msg": "queue full for %s",
        "request_id": "abc-1",
        "status": 503,
    }


def test_a_traceback_stays_inside_its_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("lockgate.serving", logging.ERROR, __file__, 1, "bug", (), sys.exc_info())
    document = json.loads(JsonFormatter().format(record))
    assert document["level"] == "error" and "RuntimeError: boom" in document["exc"]


def test_access_lines_are_buffered_and_written_together() -> None:
    stream = io.BytesIO()
    access = AccessLog("json", stream=stream, flush_every=3, clock=lambda: 1796121000.5)
    for index in range(2):
        access.record(request_id=b"r%d" % index, method="GET", path="/v2", status=200, duration_ms=0.1234)
    assert stream.getvalue() == b""  # two lines wait for the third
    access.record(
        request_id=b"r2",
        method="POST",
        path="/invocations",
        status=200,
        duration_ms=1.5,
        client="127.0.0.1",
        deployment="churn",
        variant="stable",
        model="cancer",
        version="1",
    )
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["r0", "r1", "r2"]
    assert lines[0] == {
        "ts": "2026-12-01T10:30:00.500Z",
        "level": "info",
        "logger": "lockgate.access",
        "msg": "GET /v2 200",
        "request_id": "r0",
        "method": "GET",
        "path": "/v2",
        "status": 200,
        "duration_ms": 0.123,
    }
    assert (lines[2]["deployment"], lines[2]["variant"], lines[2]["model"], lines[2]["version"]) == (
        "churn",
        "stable",
        "cancer",
        "1",
    )
    access.record(request_id=b"r3", method="GET", path="/x", status=503, duration_ms=2.0)
    access.record(request_id=b"r4", method="GET", path="/x", status=500, duration_ms=2.0)
    access.flush()
    levels = [json.loads(line)["level"] for line in stream.getvalue().splitlines()]
    assert levels[-2:] == ["warning", "error"]  # busy (503) is a warning; any other 5xx an error
    assert access.lines == 5


def test_text_access_lines_read_like_a_sentence() -> None:
    stream = io.BytesIO()
    access = AccessLog("text", stream=stream, clock=lambda: 1796121000.5)
    access.record(
        request_id=b"abc",
        method="POST",
        path="/invocations",
        status=200,
        duration_ms=0.5,
        model="m",
        version="2",
    )
    access.flush()
    assert stream.getvalue().decode() == (
        "2026-12-01T10:30:00.500Z INFO lockgate.access - POST /invocations 200 0.5ms "
        "request_id=abc model=m version=2\n"
    )


def test_stderr_writes_keep_lines_whole_and_small_enough_for_a_pipe() -> None:
    from lockgate.serving.logs import _chunks

    lines = [b"x" * 1000 + b"\n"] * 9 + [b"y" * 5000 + b"\n", b"z\n"]
    chunks = _chunks(lines, 4096)
    assert b"".join(chunks) == b"".join(lines)
    assert [len(chunk) for chunk in chunks] == [4004, 4004, 1001, 5001, 2]  # a long line goes alone
    assert all(chunk.endswith(b"\n") for chunk in chunks)


def test_log_formats_are_checked() -> None:
    assert check_log_format("json") == "json"
    with pytest.raises(UserError, match="--log-format must be text or json, got 'xml'"):
        check_log_format("xml")
    assert log_config("text", "info") is None
    assert iso_time(0.0) == "1970-01-01T00:00:00.000Z"


@pytest.mark.integration
def test_serve_with_json_logs_writes_only_json_lines_with_the_request_ids(logged_model: Any) -> None:
    options = ["--log-format", "json", "--access-log", "--log-level", "info"]
    server = start_server([str(logged_model.path), "--name", "cancer", *options], token=None, capture=True)
    proc, url = server.proc, server.url
    try:
        body = {
            "dataframe_split": {"columns": logged_model.columns, "data": [logged_model.features[0].tolist()]}
        }
        answer = httpx.post(f"{url}/invocations", json=body, headers={"x-request-id": "json-logs-1"})
        assert answer.status_code == 200
        missing = httpx.get(f"{url}/metrics?token=secret-value")
        assert missing.status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    lines = [json.loads(line) for line in (out + err).decode().splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    loggers = {line["logger"] for line in lines}
    assert {"lockgate.access", "uvicorn.error"} <= loggers, loggers
    access = {line["request_id"]: line for line in lines if line["logger"] == "lockgate.access"}
    served = access["json-logs-1"]
    assert served["status"] == 200 and served["path"] == "/invocations" and served["model"] == "cancer"
    assert served["request_id"] == answer.headers["x-request-id"]
    assert access[missing.headers["x-request-id"]]["path"] == "/metrics"
    assert b"secret-value" not in out + err  # the query string (it can hold a token) is never logged
    assert b"dataframe_split" not in out + err
