"""The admin API (deployments and rollouts) and the dashboard, behind the admin token.

Off unless a token is configured (``LOCKGATE_ADMIN_TOKEN``): without one every admin endpoint is
a 404 that says how to turn it on. A missing or malformed ``Authorization`` header is a 401, a
wrong token a 403; the token is compared in constant time. The dashboard also takes the token as
``?token=`` (a browser opening the page cannot send a header) and answers a person without one with
a page that asks for it. Which endpoints exist, with which methods, is the route table's
(:mod:`lockgate.serving.routes`); this module holds their handlers.
"""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from lockgate.errors import Forbidden, LockgateError, NotFound, Unauthorized, UserError, ValidationError
from lockgate.monitor.dashboard import (
    DASHBOARD_HEADERS,
    SIGN_IN_HEADERS,
    dashboard_authorization,
    dashboard_data,
    dashboard_page,
    sign_in_page,
)
from lockgate.rollout.spec import parse_spec
from lockgate.serving.dispatch import Auth
from lockgate.serving.exchange import JSON, Exchange, Response

if TYPE_CHECKING:
    from lockgate.serving.app import ServingApp
    from lockgate.serving.deployment import DeploymentManager

__all__ = [
    "authorize",
    "check_admin_token",
    "create_deployment",
    "dashboard",
    "dashboard_json",
    "deployment_history",
    "deployment_stats",
    "deployment_status",
    "list_deployments",
    "put_deployment",
    "rollout_command",
    "sign_in",
]

_MAX_ACTOR = 64
_HTML = b"text/html; charset=utf-8"


def authorize(auth: Auth, expected: str | None, exchange: Exchange) -> None:
    """Raise unless the exchange carries the admin token the way ``auth`` asks for it."""
    if auth is Auth.ADMIN:
        check_admin_token(expected, exchange.authorization)
    elif auth is Auth.ADMIN_PAGE:
        query = exchange.scope.get("query_string", b"")
        check_admin_token(expected, dashboard_authorization(exchange.authorization, query, expected))


def check_admin_token(expected: str | None, authorization: bytes | None) -> None:
    """Raise unless ``authorization`` is ``Bearer <expected>``."""
    if not expected:
        raise NotFound(
            "the admin API is off",
            hint="start the server with LOCKGATE_ADMIN_TOKEN set to turn it on",
        )
    if authorization is None:
        raise Unauthorized(
            "the admin API needs a bearer token",
            hint="send the header 'Authorization: Bearer $LOCKGATE_ADMIN_TOKEN'",
        )
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer" or not token:
        raise Unauthorized(
            "the Authorization header is not a bearer token",
            hint="send 'Authorization: Bearer $LOCKGATE_ADMIN_TOKEN'",
        )
    if not hmac.compare_digest(token.strip(), expected.encode()):
        raise Forbidden("the admin token is not valid", hint="check LOCKGATE_ADMIN_TOKEN")


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UserError(f"the body is not valid JSON: {exc}", hint="send a JSON object") from None
    if not isinstance(data, dict):
        raise UserError("the body must be a JSON object", hint='e.g. {"reason": "error rate too high"}')
    return data


def _actor(data: dict[str, Any]) -> str:
    actor = data.get("actor", "admin")
    if not isinstance(actor, str) or not actor or len(actor) > _MAX_ACTOR:
        raise ValidationError(f"actor must be a name of 1-{_MAX_ACTOR} characters", hint='e.g. "alice"')
    return actor


def _command_arguments(data: dict[str, Any]) -> tuple[str | None, float | None]:
    unknown = set(data) - {"actor", "reason", "duration_s"}
    if unknown:
        raise ValidationError(
            f"unknown field(s) {sorted(unknown)}", hint="a command takes actor, reason and duration_s"
        )
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationError("reason must be a string", hint='e.g. "p99 too high"')
    duration = data.get("duration_s")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float)):
        raise ValidationError("duration_s must be a number of seconds", hint="e.g. 600")
    return reason, None if duration is None else float(duration)


def _manager(app: ServingApp) -> DeploymentManager:
    if app.deployments is None:
        raise NotFound(
            "this server runs no deployments",
            hint="start it with `lockgate serve --store URL` or `lockgate serve --deployment SPEC`",
        )
    return app.deployments


async def list_deployments(app: ServingApp, exchange: Exchange) -> Response:
    """Every deployment's status."""
    manager = _manager(app)
    return Response(
        200, orjson.dumps({"deployments": [await manager.status(n) for n in sorted(manager.live)]})
    )


async def create_deployment(app: ServingApp, exchange: Exchange) -> Response:
    """Create a deployment, or give a finished one a new spec (the name from the body)."""
    return await _deploy(_manager(app), _json_body(exchange.body), None)


async def put_deployment(app: ServingApp, exchange: Exchange) -> Response:
    """Create or update the deployment named in the path."""
    return await _deploy(_manager(app), _json_body(exchange.body), exchange.params["deployment"])


async def deployment_status(app: ServingApp, exchange: Exchange) -> Response:
    """Phase, weights, per-variant numbers, the latest verdict, the shadow comparison."""
    return Response(200, orjson.dumps(await _manager(app).status(exchange.params["deployment"])))


async def rollout_command(app: ServingApp, exchange: Exchange) -> Response:
    """Start, promote, pause, resume or roll back now; answers the status after it."""
    manager = _manager(app)
    name = exchange.params["deployment"]
    data = _json_body(exchange.body)
    reason, duration_s = _command_arguments(data)
    await manager.command(
        name, exchange.params["command"], actor=_actor(data), reason=reason, duration_s=duration_s
    )
    return Response(200, orjson.dumps(await manager.status(name)))


async def deployment_history(app: ServingApp, exchange: Exchange) -> Response:
    """The audit log (``?after=ID`` for the newer events only)."""
    manager = _manager(app)
    name = exchange.params["deployment"]
    after = _after(exchange.scope.get("query_string", b""))
    return Response(200, orjson.dumps({"name": name, "events": await manager.history(name, after_id=after)}))


async def deployment_stats(app: ServingApp, exchange: Exchange) -> Response:
    """Each variant's raw counters (``VariantStats.to_dict()``), for analysis."""
    return Response(200, orjson.dumps(await _stats(_manager(app), exchange.params["deployment"])))


# ------------------------------------------------------------------------ the dashboard


async def dashboard(app: ServingApp, exchange: Exchange) -> Response:
    """The read-only dashboard page (HTML, no external assets)."""
    return Response(200, dashboard_page(), _HTML, None, DASHBOARD_HEADERS)


async def dashboard_json(app: ServingApp, exchange: Exchange) -> Response:
    """What the dashboard polls: status, recent events, weights over time."""
    data = await dashboard_data(app.deployments, now=time.time(), recent=app.recent_events)
    return Response(200, orjson.dumps(data), JSON, None, ((b"cache-control", b"no-store"),))


def sign_in(error: LockgateError) -> Response:
    """A person in a browser without a valid token: a page that asks for it, not JSON."""
    return Response(error.http_status, sign_in_page(error.message), _HTML, None, SIGN_IN_HEADERS)


async def _stats(manager: DeploymentManager, name: str) -> dict[str, Any]:
    deployment, stats = await manager.variant_stats(name)
    spec = deployment.spec
    return {
        "name": name,
        "phase": deployment.state.phase.value,
        "baseline": spec.baseline,
        "candidate": spec.candidate,
        "variants": {variant_name: counters.to_dict() for variant_name, counters in stats.items()},
    }


async def _deploy(manager: DeploymentManager, data: dict[str, Any], name: str | None) -> Response:
    actor = _actor({"actor": data.pop("actor")} if "actor" in data else {})
    if name is not None and data.setdefault("name", name) != name:
        raise ValidationError(
            f"the body names deployment '{data['name']}' but the path names '{name}'",
            hint="make them the same, or leave name out of the body",
        )
    spec = parse_spec(data)
    existed = spec.name in manager.live
    await manager.deploy(spec, actor=actor)
    return Response(200 if existed else 201, orjson.dumps(await manager.status(spec.name)))


_MAX_EVENT_ID = 2**63 - 1  # a store's 64-bit integer column


def _after(query: bytes) -> int:
    values = parse_qs(query.decode("latin-1")).get("after", ["0"])
    try:
        after = int(values[-1])
    except ValueError:
        raise ValidationError("after must be an event id (a whole number)", hint="e.g. ?after=12") from None
    if after > _MAX_EVENT_ID:
        raise ValidationError(f"after must be at most {_MAX_EVENT_ID}", hint="e.g. ?after=12")
    return max(0, after)
