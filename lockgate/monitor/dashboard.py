"""The dashboard page: one read-only HTML page, shipped in the package, and the JSON it polls.

``GET /dashboard`` answers :func:`dashboard_page` (HTML, CSS and JavaScript from
``lockgate/monitor/static/``, inlined: no CDN, no second request); the page polls
``GET /dashboard/data`` (:func:`dashboard_data`) every second. Both need the admin token, as a
bearer header or a ``?token=`` query parameter (the page sends it on as a header).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from lockgate.errors import NotFound

if TYPE_CHECKING:
    from lockgate.serving.deployment import DeploymentManager

__all__ = ["DASHBOARD_PATH", "DATA_PATH", "dashboard_authorization", "dashboard_data", "dashboard_page"]

DASHBOARD_PATH = "/dashboard"
DATA_PATH = "/dashboard/data"
RECENT_EVENTS = 40


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
    values = parse_qs(query.decode("latin-1")).get("token")
    return b"Bearer " + values[-1].encode("latin-1") if values and values[-1] else None


async def dashboard_data(manager: DeploymentManager | None, *, now: float) -> dict[str, Any]:
    """Each deployment's status, its recent audit events and its weight timeline."""
    deployments = []
    if manager is not None:
        for name in sorted(manager.live):
            events = await manager.history(name)
            deployments.append(
                {
                    "status": await manager.status(name),
                    "events": events[-RECENT_EVENTS:],
                    "timeline": [point.to_dict() for point in manager.timeline.points(name)],
                }
            )
    return {"now": now, "deployments": deployments}
