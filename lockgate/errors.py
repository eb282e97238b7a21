"""One error hierarchy for all of lockgate.

Every error a user can cause is a :class:`UserError` (or a subclass) whose message names the thing that
is wrong and how to fix it. Each class knows its HTTP status and its CLI exit code, so the ASGI app and
the CLI entry point turn any of them into output in one place (STYLE.md habits 7 and 8).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
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
    "UnsupportedMediaType",
    "UserError",
    "ValidationError",
]


class LockgateError(Exception):
    """Base of every error lockgate raises on purpose.

    ``message`` says what is wrong; ``hint`` (optional) says how to fix it; ``detail`` carries
    machine-readable context (the field, the numbers) for API clients.
    """

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    kind: ClassVar[str] = "internal_error"

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


class ModelLoadError(UserError):
    """A model's own loading code failed (a broken artifact, a missing dependency): the model's
    fault, not the server's, so a 4xx; whatever was serving before keeps serving."""

    http_status = 422
    kind = "model_load_failed"


class ServiceUnavailable(LockgateError):
    """Temporarily unable to serve (queue full, still loading); the client should retry."""

    http_status = 503
    exit_code = 1
    kind = "unavailable"

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


class StoreUnreachable(UserError):
    """A tracking server or database that cannot be reached: the message names its URI."""

    http_status = 503
    kind = "store_unreachable"
