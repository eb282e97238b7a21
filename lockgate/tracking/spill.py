"""What a run could not send: metric points and its final status, kept in a local file until
``lockgate runs sync`` delivers them.

``lockgate.track`` keeps buffered metrics until the server acknowledges them and retries a batch that
failed for a transient reason (the server down or restarting, a 5xx, a 429) with exponential backoff
for at most ``retry_window_s`` (60 s by default). After that it appends the batch, and every later
point of the run, to ``LOCKGATE_HOME/spill/<run id>.jsonl``, then its final status when it ends. The
training goes on; nothing is dropped. Sending the same points twice is harmless: MLflow stores a
(key, value, timestamp, step) point once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.errors import UserError

if TYPE_CHECKING:
    from mlflow.entities import Metric

    from lockgate.tracking.connection import Connection

__all__ = [
    "DEFAULT_RETRY_WINDOW_S",
    "SpillFile",
    "SyncResult",
    "backoff_s",
    "is_transient",
    "spill_folder",
    "sync_spilled",
]

DEFAULT_RETRY_WINDOW_S = 60.0
_FIRST_DELAY_S = 0.5
_MAX_DELAY_S = 8.0


def backoff_s(attempt: int, first_s: float = _FIRST_DELAY_S, cap_s: float = _MAX_DELAY_S) -> float:
    """The wait before retry number ``attempt`` (0-based): doubling from ``first_s``, at most ``cap_s``."""
    return min(cap_s, first_s * 2.0 ** min(attempt, 32))


def is_transient(exc: BaseException) -> bool:
    """Whether a failed MLflow call may succeed if repeated: no answer, a 5xx or a 429."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return False
    status = int(exc.get_http_status_code())  # type: ignore[no-untyped-call]
    return status >= 500 or status == 429


def spill_folder(home: Path) -> Path:
    return home / "spill"


@dataclass(frozen=True)
class SpillFile:
    """``<home>/spill/<run id>.jsonl``: one JSON object a line, appended to, never rewritten.

    Lines: ``{"run_id", "tracking_uri"}`` first, then ``{"metrics": [[key, value, timestamp_ms,
    step], ...]}`` and at most one ``{"status": "FINISHED" | "FAILED"}``.
    """

    path: Path

    @classmethod
    def for_run(cls, home: Path, run_id: str, tracking_uri: str) -> SpillFile:
        spill = cls(spill_folder(home) / f"{run_id}.jsonl")
        if not spill.path.exists():
            spill.path.parent.mkdir(parents=True, exist_ok=True)
            spill._append({"run_id": run_id, "tracking_uri": tracking_uri})
        return spill

    def _append(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
            out.flush()

    def append_metrics(self, metrics: Sequence[Metric]) -> None:
        self._append({"metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics]})

    def append_status(self, status: str) -> None:
        self._append({"status": status})

    def read(self) -> tuple[str, str, list[tuple[str, float, int, int]], str | None]:
        """(run id, tracking URI, metric points, final status or None)."""
        run_id = tracking_uri = ""
        points: list[tuple[str, float, int, int]] = []
        status: str | None = None
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    break  # a last line cut short by a crash: the points before it are whole
                raise UserError(
                    f"spill file '{self.path}' line {number} is not JSON",
                    hint="remove the broken line, then run `lockgate runs sync` again",
                ) from None
            run_id = record.get("run_id", run_id)
            tracking_uri = record.get("tracking_uri", tracking_uri)
            points.extend((str(k), float(v), int(t), int(s)) for k, v, t, s in record.get("metrics", ()))
            status = record.get("status", status)
        return run_id, tracking_uri, points, status


@dataclass(frozen=True)
class SyncResult:
    run_id: str
    path: Path
    points: int
    status: str | None
    is_sent: bool
    note: str = ""


def sync_spilled(
    conn: Connection,
    *,
    files: Iterable[Path] | None = None,
) -> list[SyncResult]:
    """Send every spilled run of this tracking server: its points in batches of 1,000, then its final
    status; the file is removed once all of it is acknowledged. Files of another server are left."""
    from mlflow.entities import Metric

    from lockgate.tracking.connection import server_errors

    paths = sorted(files) if files is not None else sorted(spill_folder(conn.settings.home).glob("*.jsonl"))
    results = []
    for path in paths:
        run_id, uri, points, status = SpillFile(path).read()
        if uri and uri != conn.settings.tracking_uri:
            results.append(SyncResult(run_id, path, len(points), status, False, f"for another server: {uri}"))
            continue
        metrics = [Metric(k, v, t, s) for k, v, t, s in points]
        with server_errors(conn, f"log to run '{run_id}'"):
            for start in range(0, len(metrics), 1000):
                conn.client.log_batch(run_id, metrics=metrics[start : start + 1000], synchronous=True)
            if status is not None:
                conn.client.set_terminated(run_id, status)
        path.unlink()
        results.append(SyncResult(run_id, path, len(points), status, True))
    return results
