"""The admin API: deployments and rollouts over HTTP, behind a bearer token.

Off unless a token is configured (``LOCKGATE_ADMIN_TOKEN``): without one every ``/admin/`` path is
a 404 that says how to turn it on. A missing or malformed ``Authorization`` header is a 401, a
wrong token a 403; the token is compared in constant time.

=======  ==========================================  =============================================
method   path                                        does
=======  ==========================================  =============================================
GET      /admin/deployments                          list deployments with their phase and weights
POST     /admin/deployments                          create or update one (body: the spec as JSON)
PUT      /admin/deployments/{name}                   the same, the name from the path
GET      /admin/deployments/{name}                   status: phase, weights, per-variant numbers,
                                                     the latest verdict, the shadow comparison
POST     /admin/deployments/{name}/{command}         start, promote, pause, resume, rollback; body
                                                     ``{"reason", "actor", "duration_s"}``, optional
GET      /admin/deployments/{name}/history           the audit log (``?after=ID`` for newer ones)
GET      /admin/deployments/{name}/stats             each variant's raw counters
                                                     (``VariantStats.to_dict()``), for analysis
=======  ==========================================  =============================================
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from lockgate.errors import Forbidden, MethodNotAllowed, NotFound, Unauthorized, UserError, ValidationError
from lockgate.rollout.runner import COMMANDS
from lockgate.rollout.spec import parse_spec

if TYPE_CHECKING:
    from lockgate.serving.deployment import DeploymentManager

__all__ = ["ADMIN_PREFIX", "check_admin_token", "handle_admin"]

ADMIN_PREFIX = "/admin/deployments"
_MAX_ACTOR = 64


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


async def handle_admin(
    manager: DeploymentManager, method: str, path: str, query: bytes, body: bytes
) -> tuple[int, bytes]:
    """Answer one admin request (the token was checked): (status, JSON body)."""
    if path.rstrip("/") == ADMIN_PREFIX:
        if method == "GET":
            return 200, orjson.dumps({"deployments": [await manager.status(n) for n in sorted(manager.live)]})
        if method == "POST":
            return await _deploy(manager, _json_body(body), None)
        raise _not_allowed(method, "GET, POST")
    if not path.startswith(ADMIN_PREFIX + "/"):
        raise NotFound(f"no admin endpoint {path}", hint="see GET /openapi.json")
    parts = path[len(ADMIN_PREFIX) + 1 :].rstrip("/").split("/")
    name = parts[0]
    if len(parts) == 1:
        if method == "GET":
            return 200, orjson.dumps(await manager.status(name))
        if method == "PUT":
            return await _deploy(manager, _json_body(body), name)
        raise _not_allowed(method, "GET, PUT")
    if len(parts) == 2 and parts[1] == "history":
        if method != "GET":
            raise _not_allowed(method, "GET")
        after = _after(query)
        return 200, orjson.dumps({"name": name, "events": await manager.history(name, after_id=after)})
    if len(parts) == 2 and parts[1] == "stats":
        if method != "GET":
            raise _not_allowed(method, "GET")
        return 200, orjson.dumps(await _stats(manager, name))
    if len(parts) == 2 and parts[1] in COMMANDS:
        if method != "POST":
            raise _not_allowed(method, "POST")
        data = _json_body(body)
        reason, duration_s = _command_arguments(data)
        await manager.command(name, parts[1], actor=_actor(data), reason=reason, duration_s=duration_s)
        return 200, orjson.dumps(await manager.status(name))
    raise NotFound(
        f"no admin endpoint {path}",
        hint=f"commands are {', '.join(COMMANDS)}, history and stats, under {ADMIN_PREFIX}/{{name}}/",
    )


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


async def _deploy(manager: DeploymentManager, data: dict[str, Any], name: str | None) -> tuple[int, bytes]:
    actor = _actor({"actor": data.pop("actor")} if "actor" in data else {})
    if name is not None and data.setdefault("name", name) != name:
        raise ValidationError(
            f"the body names deployment '{data['name']}' but the path names '{name}'",
            hint="make them the same, or leave name out of the body",
        )
    spec = parse_spec(data)
    existed = spec.name in manager.live
    await manager.deploy(spec, actor=actor)
    return (200 if existed else 201), orjson.dumps(await manager.status(spec.name))


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


def _not_allowed(method: str, allowed: str) -> MethodNotAllowed:
    return MethodNotAllowed(f"method {method} is not allowed here; use {allowed}", detail={"allow": allowed})
