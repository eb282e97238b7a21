"""The server's logs: human text (the default) or one JSON object per line, and the access log.

- :class:`JsonFormatter` turns a log record into ``{"ts", "level", "logger", "msg", ...}`` with
  any of the request fields (:data:`REQUEST_FIELDS`) the record carries as ``extra`` and the
  traceback as ``exc``. :func:`log_config` is the ``logging.config`` dictionary that routes
  uvicorn's and lockgate's records through it (``lockgate serve --log-format json``).
- :class:`AccessLog` writes one line per answered request (``--access-log``, off by default):
  the request id the response carries, method, path (never the query string, which can hold the
  dashboard's token, and never the body), status, duration and, where known, the deployment,
  variant, model and version. It formats into a list and writes the lines together every 64
  requests or when :meth:`AccessLog.flush` runs (the app flushes it a few times a second and at
  shutdown): a write per request would cost more than the request at 20,000 a second.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO, Literal

import orjson

from lockgate.errors import UserError

__all__ = [
    "LOG_FORMATS",
    "REQUEST_FIELDS",
    "AccessLog",
    "JsonFormatter",
    "LogFormat",
    "check_log_format",
    "format_line",
    "iso_time",
    "log_config",
    "says_info",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
REQUEST_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "client",
    "deployment",
    "variant",
    "model",
    "version",
)
"""The request fields a log line may carry (an access line has those that are known)."""

ACCESS_LOGGER = "lockgate.access"


def check_log_format(value: str) -> LogFormat:
    """``value`` as a log format, or a :class:`UserError` naming the choices."""
    if value == "text":
        return "text"
    if value == "json":
        return "json"
    raise UserError(f"--log-format must be text or json, got '{value}'", hint="json: one object per line")


def iso_time(epoch_s: float) -> str:
    """UTC ISO 8601 with milliseconds: ``2026-12-01T10:30:00.123Z``."""
    seconds = int(epoch_s)
    millis = int((epoch_s - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in REQUEST_FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                document[key] = value.decode("latin-1") if isinstance(value, bytes) else value
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exc"] = record.exc_text
        return orjson.dumps(document, default=str).decode()


def log_config(log_format: LogFormat, level: str) -> dict[str, Any] | None:
    """The ``logging.config`` dictionary for uvicorn (None: uvicorn's own text format)."""
    if log_format == "text":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["json"], "level": level.upper(), "propagate": False},
            "lockgate": {"handlers": ["json"], "level": level.upper(), "propagate": False},
        },
    }


def format_line(message: str, log_format: LogFormat, *, logger: str = "lockgate.serving") -> str:
    """One INFO line as the server's own lines look (uvicorn's ``INFO:     ...``, or JSON), for what
    is said before uvicorn sets up logging: the model that was resolved and verified."""
    record = logging.LogRecord(logger, logging.INFO, __file__, 0, message, (), None)
    if log_format == "json":
        return JsonFormatter().format(record)
    from uvicorn.logging import DefaultFormatter

    return DefaultFormatter("%(levelprefix)s %(message)s", use_colors=False).format(record)


def says_info(level: str) -> bool:
    """Whether uvicorn's ``--log-level`` shows INFO lines (info, debug, trace)."""
    return level.lower() in ("info", "debug", "trace")


class AccessLog:
    """One line per answered request, formatted as ``log_format`` and written in batches."""

    def __init__(
        self,
        log_format: LogFormat = "text",
        *,
        stream: BinaryIO | None = None,
        flush_every: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log_format = log_format
        self.stream = stream
        self.flush_every = flush_every
        self.clock = clock
        self.lines = 0
        self._buffer: list[bytes] = []
        self._second = -1
        self._second_text = ""

    def _ts(self) -> str:
        now = self.clock()
        second = int(now)
        if second != self._second:  # formatting a date costs microseconds: once a second
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1000):03d}Z"

    def record(
        self,
        *,
        request_id: bytes,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        client: str | None = None,
        deployment: str | None = None,
        variant: str | None = None,
        model: str | None = None,
        version: str | None = None,
    ) -> None:
        """Format one answered request into the buffer; every ``flush_every`` lines, write them."""
        ts = self._ts()
        # a refused request or a busy server is worth a look; any other 5xx is a bug
        level = "info" if status < 400 else "warning" if status < 500 or status == 503 else "error"
        rid = request_id.decode("latin-1")
        duration = round(duration_ms, 3)
        if self.log_format == "json":
            document: dict[str, Any] = {
                "ts": ts,
                "level": level,
                "logger": ACCESS_LOGGER,
                "msg": f"{method} {path} {status}",
                "request_id": rid,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": duration,
            }
            if client is not None:
                document["client"] = client
            if deployment is not None:
                document["deployment"] = deployment
            if variant is not None:
                document["variant"] = variant
            if model is not None:
                document["model"] = model
                document["version"] = version
            line = orjson.dumps(document) + b"\n"
        else:
            where = "".join(
                f" {key}={value}"
                for key, value in (
                    ("deployment", deployment),
                    ("variant", variant),
                    ("model", model),
                    ("version", version),
                )
                if value is not None
            )
            text = (
                f"{ts} {level.upper()} {ACCESS_LOGGER} {client or '-'} {method} {path} {status} "
                f"{duration}ms request_id={rid}{where}\n"
            )
            line = text.encode("utf-8", "replace")
        self._buffer.append(line)
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered: on stderr in writes of whole lines, at most 4 KiB each."""
        if not self._buffer:
            return
        lines, self._buffer = self._buffer, []
        self.lines += len(lines)
        if self.stream is not None:
            data = b"".join(lines)
            self.stream.write(data)
            self.stream.flush()
            return
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # a replaced stderr (a test's capture)
            sys.stderr.write(b"".join(lines).decode("utf-8", "replace"))
            sys.stderr.flush()
            return
        sys.stderr.flush()  # whatever text is pending goes first
        for chunk in _chunks(lines, _ATOMIC_BYTES):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]


_ATOMIC_BYTES = 4096  # PIPE_BUF on Linux: a write this size to a pipe is never split


def _chunks(lines: list[bytes], limit: int) -> list[bytes]:
    """Whole lines joined into writes of at most ``limit`` bytes (a longer line alone), so the
    lines of several worker processes sharing one stderr pipe never cut into each other."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) > limit:
            chunks.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        chunks.append(b"".join(current))
    return chunks
