"""The dashboard page: one read-only HTML page, shipped in the package, and the JSON it polls.

``GET /dashboard`` answers :func:`dashboard_page` (HTML, CSS and JavaScript from
``lockgate/monitor/static/``, inlined: no CDN, no second request); the page polls
``GET /dashboard/data`` (:func:`dashboard_data`) every second. Both need the admin token, as a
bearer header or a ``?token=`` query parameter (the page sends it on as a header).
"""

from __future__ import annotations

import html
from collections import deque
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from lockgate.errors import NotFound

if TYPE_CHECKING:
    from lockgate.serving.live import Deployments

__all__ = [
    "DASHBOARD_HEADERS",
    "DASHBOARD_PATH",
    "DATA_PATH",
    "SIGN_IN_HEADERS",
    "RecentEvents",
    "dashboard_authorization",
    "dashboard_data",
    "dashboard_page",
    "sign_in_page",
]

DASHBOARD_PATH = "/dashboard"
DATA_PATH = "/dashboard/data"
RECENT_EVENTS = 40

DASHBOARD_HEADERS = (
    # the page may run its own inline script and talk to this server, nothing else: no CDN, no
    # frames, no other origin (a violation is reported on the page, so the browser test sees it)
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        b"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


SIGN_IN_HEADERS = (
    # no script at all; the one form may only go back to this server
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def sign_in_page(problem: str) -> bytes:
    """What a browser gets at /dashboard without a valid token: a page that says so and asks for
    it (a JSON 401 left a person with nothing to act on)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lockgate dashboard: token needed</title>
<style>body{{font:16px system-ui,sans-serif;max-width:34em;margin:4em auto;padding:0 1em}}
input{{font:inherit;padding:.3em;width:100%;box-sizing:border-box}}button{{font:inherit;margin-top:.6em}}
.problem{{color:#a40000}}</style></head>
<body><h1>lockgate dashboard</h1>
<p class="problem">{html.escape(problem)}.</p>
<p>Enter the server's admin token (<code>$LOCKGATE_ADMIN_TOKEN</code>), or open
<code>/dashboard?token=…</code> directly.</p>
<form method="get" action="{DASHBOARD_PATH}"><label for="token">admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<button type="submit">open the dashboard</button></form></body></html>
""".encode()


@cache
def dashboard_page() -> bytes:
    """The page, with its stylesheet and script inlined (read once from the package)."""
    static = resources.files("lockgate.monitor") / "static"
    html = (static / "dashboard.html").read_text("utf-8")
    css = (static / "dashboard.css").read_text("utf-8")
    script = (static / "dashboard.js").read_text("utf-8")
    return html.replace("/*{{CSS}}*/", css).replace("//{{JS}}", script).encode("utf-8")


def dashboard_authorization(authorization: bytes | None, query: bytes, token: str | None) -> bytes | None:
    """The Authorization header to check: the request's own, else one made from ``?token=``.

    Raises NotFound when no admin token is configured (the dashboard is off)."""
    if not token:
        raise NotFound(
            "the dashboard is off",
            hint="start the server with LOCKGATE_ADMIN_TOKEN set, "
            "then open /dashboard?token=$LOCKGATE_ADMIN_TOKEN",
        )
    if authorization is not None:
        return authorization
    # %-escapes decoded as latin-1 too, so any token round-trips to the bytes compared
    values = parse_qs(query.decode("latin-1"), encoding="latin-1").get("token")
    return b"Bearer " + values[-1].encode("latin-1") if values and values[-1] else None


class RecentEvents:
    """The newest ``keep`` audit events of each deployment, read from the store incrementally
    (only those after the last one seen), so a dashboard polling every second stays cheap."""

    def __init__(self, keep: int = RECENT_EVENTS) -> None:
        self.keep = keep
        self._events: dict[str, deque[dict[str, Any]]] = {}

    async def of(self, manager: Deployments, name: str) -> list[dict[str, Any]]:
        events = self._events.setdefault(name, deque(maxlen=self.keep))
        after = int(events[-1]["id"]) if events else 0
        events.extend(await manager.history(name, after_id=after))
        return list(events)


async def dashboard_data(
    manager: Deployments | None, *, now: float, recent: RecentEvents | None = None
) -> dict[str, Any]:
    """Each deployment's status, its recent audit events and its weight timeline."""
    recent = recent or RecentEvents()
    deployments = []
    if manager is not None:
        for name in sorted(manager.live):
            deployments.append(
                {
                    "status": await manager.status(name),
                    "events": await recent.of(manager, name),
                    "timeline": [point.to_dict() for point in manager.timeline.points(name)],
                }
            )
    return {"now": now, "deployments": deployments}
