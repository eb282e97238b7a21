"""Retraining on drift: the first drift of a variant runs ``lockgate pipeline run PIPELINE.yaml``.

Off unless the server is started with ``--retrain-on-drift PIPELINE.yaml``. The decision is pure
(:func:`retrain_refusal`: never two runs at once, at most one per ``cooldown_s``); the shell,
:class:`RetrainTrigger`, starts the pipeline as a subprocess (the server's own Python, so the same
lockgate) and waits for it in a daemon thread, off the request path and off the controller's tick.
:class:`RetrainHook` runs it on the deployment loop: it writes a ``retrain`` audit event when a run
starts (or ``retrain_skipped``, and why) and a ``retrain_done`` event with its exit code when it
ends; the latter is also an alert.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.errors import UserError
from lockgate.rollout.state import RecordEvent
from lockgate.rollout.store import Store

if TYPE_CHECKING:
    # types only: the serving package imports this module, so it cannot import serving back
    from lockgate.serving.live import LiveDeployment

__all__ = ["RetrainHook", "RetrainTrigger", "retrain_refusal"]

_log = logging.getLogger("lockgate.monitor")


def retrain_refusal(
    *, is_running: bool, last_started_at: float | None, now: float, cooldown_s: float
) -> str | None:
    """Why no retraining starts now, or None when it may (pure)."""
    if is_running:
        return "a retraining run is still going"
    if last_started_at is not None and now - last_started_at < cooldown_s:
        wait_s = cooldown_s - (now - last_started_at)
        return f"the last run started {now - last_started_at:.0f} s ago; the cooldown has {wait_s:.0f} s left"
    return None


class RetrainTrigger:
    """Runs ``lockgate pipeline run PIPELINE`` at most once per ``cooldown_s``, one run at a time."""

    def __init__(self, pipeline: str | Path, *, cooldown_s: float = 3600.0) -> None:
        self.pipeline = Path(pipeline)
        if not self.pipeline.is_file():
            raise UserError(
                f"--retrain-on-drift: pipeline file '{self.pipeline}' does not exist",
                hint="give the pipeline.yaml that retrains the model (lockgate pipeline run --help)",
            )
        if not cooldown_s >= 0:
            raise UserError(f"the retraining cooldown must be >= 0 s, got {cooldown_s}", hint="e.g. 3600")
        self.cooldown_s = cooldown_s
        self.last_started_at: float | None = None
        self.runs = 0
        self._thread: threading.Thread | None = None

    @property
    def command(self) -> list[str]:
        """The pipeline run, with the server's own interpreter (and so its own lockgate)."""
        entry = "from lockgate.cli.main import main; main()"
        return [sys.executable, "-c", entry, "pipeline", "run", str(self.pipeline)]

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def refusal(self, now: float) -> str | None:
        return retrain_refusal(
            is_running=self.is_running,
            last_started_at=self.last_started_at,
            now=now,
            cooldown_s=self.cooldown_s,
        )

    def start(self, now: float, on_done: Callable[[int, float], None]) -> None:
        """Start the run; ``on_done(exit_code, duration_s)`` is called from its thread when it ends."""
        self.last_started_at = now
        self.runs += 1
        command: Sequence[str] = self.command

        def wait() -> None:
            started = time.monotonic()
            try:
                # the pipeline's output goes where the server's does
                code = subprocess.run(command, check=False, stdin=subprocess.DEVNULL).returncode
            except OSError as exc:
                _log.error("could not start the retraining pipeline: %s", exc)
                code = 127
            on_done(code, time.monotonic() - started)

        self._thread = threading.Thread(target=wait, name="lockgate-retrain", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)


class RetrainHook:
    """Retraining on the deployment loop: the first drift of a variant (:meth:`note`, told by the
    drift hook) runs ``trigger``'s pipeline, unless a run or the cooldown says not now; every drift
    that waited is audited either way. ``on_done`` hears of each finished run (the alerts)."""

    def __init__(self, trigger: RetrainTrigger, *, on_done: Callable[[str], None] | None = None) -> None:
        self.trigger = trigger
        self.on_done = on_done
        self._due: list[tuple[str, str]] = []  # (deployment, variant) that drifted
        self._phases: dict[str, str] = {}

    def note(self, name: str, variant: str) -> None:
        """Variant ``variant`` of deployment ``name`` drifted (any thread)."""
        self._due.append((name, variant))

    def attach(self, live: LiveDeployment, previous: LiveDeployment | None) -> None:
        """Nothing to sample on the request path."""

    async def tick(self, deployments: Mapping[str, LiveDeployment], store: Store) -> None:
        self._phases = {name: live.phase for name, live in deployments.items()}
        if self._due:
            await asyncio.to_thread(self._start, store)

    async def close(self, deployments: Mapping[str, LiveDeployment], store: Store) -> None:
        """A run still going finishes on its own (its process is not the server's)."""

    def _start(self, store: Store) -> None:
        trigger = self.trigger
        due, self._due = self._due, []
        for name, variant in due:
            phase = self._phases.get(name, "")
            now = time.time()
            refusal = trigger.refusal(now)
            if refusal is not None:
                reason = f"no retraining after the drift of variant '{variant}': {refusal}"
                store.append_events(
                    name, [RecordEvent(now, "monitor", "retrain_skipped", reason, phase, phase)]
                )
                continue
            reason = f"drift of variant '{variant}': running lockgate pipeline run {trigger.pipeline}"
            store.append_events(name, [RecordEvent(now, "monitor", "retrain", reason, phase, phase)])
            _log.warning("deployment '%s': %s", name, reason)

            def done(code: int, duration_s: float, name: str = name, variant: str = variant) -> None:
                phase = self._phases.get(name, "")
                outcome = "succeeded" if code == 0 else f"failed with exit code {code}"
                why = f"retraining pipeline {trigger.pipeline} after the drift of '{variant}' {outcome}"
                numbers = {"exit_code": float(code), "duration_s": duration_s}
                event = RecordEvent(time.time(), "monitor", "retrain_done", why, phase, phase, numbers)
                store.append_events(name, [event])
                (_log.info if code == 0 else _log.error)("deployment '%s': %s", name, why)
                if self.on_done is not None:
                    self.on_done(name)

            trigger.start(now, done)
