"""A client for a running server's admin API (what ``lockgate deploy`` and ``lockgate rollout`` use).

Each error the server answers comes back as the matching :mod:`lockgate.errors` class with the
server's message, so a script gets ``NotFound`` for an unknown deployment and the CLI exits 2.

Example::

    client = AdminClient("http://127.0.0.1:8080", token=os.environ["LOCKGATE_ADMIN_TOKEN"])
    client.deploy(yaml.safe_load(open("canary.yaml")))
    client.command("churn", "start", reason="ship v4")
    print(client.status("churn")["phase"])
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from lockgate.errors import (
    Conflict,
    Forbidden,
    LockgateError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    StoreUnreachable,
    Unauthorized,
    UnsupportedMediaType,
    UserError,
    ValidationError,
)

__all__ = ["DEFAULT_URL", "AdminClient", "send_feedback"]

DEFAULT_URL = "http://127.0.0.1:8080"

_BY_STATUS: dict[int, type[LockgateError]] = {
    400: UserError,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationError,
    503: ServiceUnavailable,
}


class AdminClient:
    """The admin API of the server at ``url`` (default ``$LOCKGATE_URL`` or 127.0.0.1:8080), with
    the bearer ``token`` (default ``$LOCKGATE_ADMIN_TOKEN``)."""

    def __init__(self, url: str | None = None, *, token: str | None = None, timeout_s: float = 120.0) -> None:
        self.url = (url or os.environ.get("LOCKGATE_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("LOCKGATE_ADMIN_TOKEN")
        if not self.token:
            raise Unauthorized(
                "no admin token given",
                hint="set LOCKGATE_ADMIN_TOKEN (the same value the server was started with) or pass --token",
            )
        self._client = httpx.Client(
            base_url=self.url,
            headers={"authorization": f"Bearer {self.token}"},
            timeout=timeout_s,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from None
        return _answer(response, self.url)

    def deployments(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/admin/deployments")["deployments"])

    def deploy(self, spec: dict[str, Any], *, actor: str | None = None) -> dict[str, Any]:
        """Create or update a deployment from its spec (a plain mapping, as in the YAML)."""
        body = {**spec, **({"actor": actor} if actor else {})}
        name = spec.get("name")
        if isinstance(name, str) and name:
            return dict(self._call("PUT", f"/admin/deployments/{name}", body))
        return dict(self._call("POST", "/admin/deployments", body))

    def status(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/admin/deployments/{name}"))

    def command(
        self,
        name: str,
        verb: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
        duration_s: float | None = None,
    ) -> dict[str, Any]:
        """``start``, ``promote``, ``pause``, ``resume`` or ``rollback``; returns the new status."""
        body: dict[str, Any] = {}
        if actor:
            body["actor"] = actor
        if reason:
            body["reason"] = reason
        if duration_s is not None:
            body["duration_s"] = duration_s
        return dict(self._call("POST", f"/admin/deployments/{name}/{verb}", body))

    def history(self, name: str, *, after_id: int = 0) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/admin/deployments/{name}/history?after={after_id}")["events"])

    def stats(self, name: str) -> dict[str, Any]:
        """Each variant's raw counters (``VariantStats.to_dict()``) under ``"variants"``."""
        return dict(self._call("GET", f"/admin/deployments/{name}/stats"))


def send_feedback(
    url: str | None,
    model: str,
    request_id: str,
    *,
    value: float | None = None,
    label: bool | int | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Send one outcome for an answered request to ``POST /v2/models/{model}/feedback``.

    ``request_id`` is the answer's ``x-request-id`` header; give a numeric ``value`` (a score,
    revenue) or a 0/1 ``label`` (a conversion). Returns the server's answer (``"counted"`` is
    False for a repeat); an unknown id raises NotFound, a different outcome for a counted id
    Conflict. No token needed: feedback is not an admin call.

    Example::

        answer = httpx.post(f"{url}/v2/models/churn/infer", json=request)
        send_feedback(url, "churn", answer.headers["x-request-id"], label=True)
    """
    base = (url or os.environ.get("LOCKGATE_URL") or DEFAULT_URL).rstrip("/")
    body: dict[str, Any] = {"request_id": request_id}
    if value is not None:
        body["value"] = value
    if label is not None:
        body["label"] = label if isinstance(label, bool) else int(label)
    try:
        response = httpx.post(f"{base}/v2/models/{model}/feedback", json=body, timeout=timeout_s)
    except httpx.TransportError as exc:
        raise _unreachable(base, exc) from None
    return dict(_answer(response, base))


def _unreachable(url: str, exc: Exception) -> StoreUnreachable:
    return StoreUnreachable(
        f"cannot reach lockgate at {url}: {exc}",
        hint="start it with `lockgate serve --store ...` (with LOCKGATE_ADMIN_TOKEN set), "
        "or point --url / LOCKGATE_URL at it",
    )


def _answer(response: httpx.Response, url: str) -> Any:
    """The JSON of a success, or the matching lockgate error with the server's message."""
    if response.status_code < 400:
        return response.json()
    try:
        payload = response.json()
        message = str(payload.get("detail") or payload)
    except ValueError:
        message = response.text[:500] or response.reason_phrase
    cls = _BY_STATUS.get(response.status_code, LockgateError)
    raise cls(f"{message} (HTTP {response.status_code} from {url})")
