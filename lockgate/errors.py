"""One error hierarchy for all of lockgate.

Three branches, one per kind of trouble, each with its CLI exit code and HTTP status:

========================  =========  ======  =====================================================
branch                    exit code  HTTP    meaning
========================  =========  ======  =====================================================
:class:`CheckFailed`      1          422     a check lockgate ran said no (a gate, drift, a tolerance,
                                             a pipeline stage); the report above the message says why
:class:`UserError`        2          4xx     bad input: the message names what is wrong and the fix
:class:`Unavailable`      3          503     an outage (a tracking server or database that cannot be
                                             reached, a server still loading or full): retry later;
                                             502/504: an upstream LLM endpoint failed or timed out
:class:`LockgateError`    1          500     anything else lockgate raises on purpose
========================  =========  ======  =====================================================

Every class knows its HTTP status, its exit code and the word that labels it, so the ASGI app and the
command-line entry points turn any of them into output in one place (:func:`render`, STYLE.md habits 7
and 8). Nothing else in lockgate chooses an exit code.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "EXIT_CODES",
    "CheckFailed",
    "Conflict",
    "Forbidden",
    "IllegalTransition",
    "IntegrityError",
    "LockgateError",
    "MethodNotAllowed",
    "ModelLoadError",
    "NotFound",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "StoreUnreachable",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamTimeout",
    "UserError",
    "ValidationError",
    "render",
]


class LockgateError(Exception):
    """Base of every error lockgate raises on purpose.

    ``message`` says what is wrong; ``hint`` (optional) says how to fix it; ``detail`` carries
    machine-readable context (the field, the numbers) for API clients.
    """

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    kind: ClassVar[str] = "internal_error"
    # the word before the message on a terminal: "error: ...", "failed: ..."
    label: ClassVar[str] = "error"

    def __init__(self, message: str, *, hint: str | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the API returns: ``{"error": ..., "detail": ...}``."""
        body: dict[str, Any] = {"error": self.kind, "detail": str(self)}
        if self.detail is not None:
            body["context"] = self.detail
        return body

    def to_openai_dict(self) -> dict[str, Any]:
        """The same error in the shape OpenAI-compatible clients read (the ``/v1/`` endpoints):
        ``{"error": {"message", "type", "param", "code"}}``."""
        param = self.detail.get("field") if isinstance(self.detail, dict) else None
        return {"error": {"message": str(self), "type": self.kind, "param": param, "code": self.http_status}}


class UserError(LockgateError):
    """Bad input from a user: a 4xx on the API, exit code 2 on the CLI."""

    http_status = 400
    exit_code = 2
    kind = "bad_request"


class ValidationError(UserError):
    """A value that does not fit its schema (a request field, a config key)."""

    http_status = 422
    kind = "validation_error"


class NotFound(UserError):
    """A named thing (run, model, version, alias, dataset, deployment) does not exist."""

    http_status = 404
    kind = "not_found"


class Conflict(UserError):
    """The request clashes with the current state (a name taken, a rollout already running)."""

    http_status = 409
    kind = "conflict"


class IllegalTransition(Conflict):
    """A rollout was asked to move between two phases that the transition table does not allow."""

    kind = "illegal_transition"


class IntegrityError(UserError):
    """Content does not match its recorded digest (a tampered artifact, a changed dataset)."""

    http_status = 409
    kind = "integrity_error"


class Unauthorized(UserError):
    """No credentials, or credentials that are not valid."""

    http_status = 401
    kind = "unauthorized"


class Forbidden(UserError):
    """Valid credentials that do not allow this action."""

    http_status = 403
    kind = "forbidden"


class MethodNotAllowed(UserError):
    """An endpoint called with a method it does not take (``detail["allow"]`` lists those it does)."""

    http_status = 405
    kind = "method_not_allowed"


class PayloadTooLarge(UserError):
    """A request body over the configured limit."""

    http_status = 413
    kind = "payload_too_large"


class UnsupportedMediaType(UserError):
    """A request body in a content type the endpoint does not read."""

    http_status = 415
    kind = "unsupported_media_type"


class ClientClosedRequest(UserError):
    """The client went away before its answer was ready; the work for it was stopped. Nobody reads
    this status (499, as nginx counts it); it is there for the access log and the counters."""

    http_status = 499
    kind = "client_closed_request"


class ModelLoadError(UserError):
    """A model's own loading code failed (a broken artifact, a missing dependency): the model's
    fault, not the server's, so a 4xx; whatever was serving before keeps serving."""

    http_status = 422
    kind = "model_load_failed"


class CheckFailed(LockgateError):
    """A check lockgate ran said no: a gate, a drift test, an optimization's tolerance, a pipeline
    stage. Not an error of the user or of lockgate: the verdict, with exit code 1 for CI."""

    http_status = 422
    exit_code = 1
    kind = "check_failed"
    label = "failed"


class Unavailable(LockgateError):
    """An outage: something lockgate needs cannot be reached or is not ready. Retrying later may work;
    nothing the user typed is wrong. Exit code 3 on the CLI, 503 on the API."""

    http_status = 503
    exit_code = 3
    kind = "unavailable"


class ServiceUnavailable(Unavailable):
    """Temporarily unable to serve (queue full, still loading); the client should retry."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        detail: Any = None,
        retry_after_s: float = 1.0,
    ) -> None:
        super().__init__(message, hint=hint, detail=detail)
        self.retry_after_s = retry_after_s


class StoreUnreachable(Unavailable):
    """A tracking server or database that cannot be reached: the message names its URI."""

    kind = "store_unreachable"


class UpstreamError(Unavailable):
    """An upstream endpoint lockgate forwards to (an OpenAI-compatible LLM server) failed: it could
    not be reached, answered 5xx, an error, or something that is not its API. A 502 naming it."""

    http_status = 502
    kind = "bad_gateway"


class UpstreamTimeout(Unavailable):
    """An upstream endpoint did not answer (or stopped answering) within its timeout: a 504 naming it."""

    http_status = 504
    kind = "gateway_timeout"


# The exit codes of the command line, in one place (the docs' tables are checked against it).
EXIT_CODES: dict[int, str] = {
    0: "success",
    CheckFailed.exit_code: "a check failed (a gate, drift, a tolerance, a stage), or an internal error",
    UserError.exit_code: "bad input: the message names what is wrong and how to fix it",
    Unavailable.exit_code: "an outage: a server or database could not be reached; retry later",
}


def render(exc: LockgateError) -> list[str]:
    """The lines a terminal shows for ``exc``: ``label: message`` and, if there is one, ``hint: ...``.

    The CLI and the server's ``__main__`` both print these, so an error reads the same everywhere.
    """
    lines = [f"{exc.label}: {exc.message}"]
    if exc.hint:
        lines.append(f"hint: {exc.hint}")
    return lines
