"""Outcomes joined to the variant that answered: ``POST /v2/models/{name}/feedback``.

A client learns later whether a prediction was good (the user converted, the order was worth 42.50)
and sends that outcome with the request's id. :class:`FeedbackJoins` remembers, per served name (a
deployment or a plain model), which variant answered each of the last ``max_ids`` requests with a
200: one ``OrderedDict`` insert per request, the oldest id evicted, no I/O. Feedback looks the id
up and folds the outcome into that variant's :class:`~lockgate.stats.accumulators.VariantStats`,
so it reaches the controller and the status through the same snapshots as the request counts.

The body (:func:`parse_feedback`) is ``{"request_id": ID, "value": NUMBER}`` for a numeric outcome
(folded into the outcome moments) or ``{"request_id": ID, "label": 0 | 1 | true | false}`` for a
conversion (folded into the conversions). Each id counts once: the same outcome again is answered
200 with ``"duplicate": true`` and not counted; a different outcome for it is a 409.

The joins live in the serving process only: feedback sent to another gateway, after a restart, or
for an id older than the last ``max_ids`` is a 404 that says so.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from lockgate.errors import Conflict, NotFound, UserError, ValidationError
from lockgate.serving.exchange import Exchange, Response
from lockgate.serving.variant import Variant

if TYPE_CHECKING:
    from lockgate.serving.app import ServingApp

__all__ = ["DEFAULT_MAX_IDS", "Feedback", "FeedbackJoins", "feedback", "parse_feedback"]

DEFAULT_MAX_IDS = 100_000
_MAX_REQUEST_ID = 128
_FIELDS = frozenset(["request_id", "value", "label"])


@dataclass(frozen=True)
class Feedback:
    """One outcome for one request: a number (``value``) or a 0/1 conversion (``label``)."""

    request_id: str
    value: float | None = None
    label: bool | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.label is None):
            raise ValidationError(
                "feedback needs exactly one of 'value' and 'label'",
                hint='send {"request_id": ID, "value": 12.5} or {"request_id": ID, "label": 1}',
                detail={"field": "value"},
            )

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value} if self.value is not None else {"label": self.label}


def _field_error(field: str, message: str, hint: str) -> ValidationError:
    return ValidationError(f"feedback field '{field}' {message}", hint=hint, detail={"field": field})


def parse_feedback(body: bytes) -> Feedback:
    """The feedback in a JSON body; a 400 for bad JSON, a 422 naming the field that is wrong."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UserError(f"the feedback body is not valid JSON: {exc}", hint="send a JSON object") from None
    if not isinstance(data, dict):
        raise UserError(
            "the feedback body must be a JSON object", hint='e.g. {"request_id": "abc", "label": 1}'
        )
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise _field_error(unknown[0], "is not known", "feedback takes request_id and one of value, label")
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= _MAX_REQUEST_ID:
        raise _field_error(
            "request_id",
            "must be a string of 1-128 characters",
            "send the x-request-id header of the answer (or the V2 body's id)",
        )
    value = data.get("value")
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        raise _field_error("value", f"must be a finite number, got {value!r}", 'e.g. "value": 42.5')
    label = data.get("label")
    if label is not None and (label not in (0, 1) or isinstance(label, float)):
        raise _field_error("label", f"must be 0, 1, true or false, got {label!r}", 'e.g. "label": 1')
    return Feedback(
        request_id,
        None if value is None else float(value),
        None if label is None else bool(label),
    )


@dataclass(frozen=True, slots=True)
class _Answered:
    """Which variant answered a request, and the request's analysis unit (None: none known)."""

    variant: Variant
    unit: int | None = None


@dataclass(frozen=True)
class _Recorded:
    """A joined request whose outcome has been counted (kept to make repeats idempotent)."""

    variant: Variant
    feedback: Feedback


class FeedbackJoins:
    """Request id → the variant that answered it, the last ``max_ids`` per served name."""

    def __init__(self, max_ids: int = DEFAULT_MAX_IDS) -> None:
        if max_ids < 1:
            raise UserError(f"max_ids={max_ids} must be 1 or more", hint="e.g. 100000")
        self.max_ids = max_ids
        self._joins: dict[str, OrderedDict[bytes, _Answered | _Recorded]] = {}

    def remember(self, name: str, request_id: bytes, variant: Variant, unit: int | None = None) -> None:
        """Note that ``variant`` answered ``request_id`` for ``name`` (the request path: O(1)), in
        analysis unit ``unit``: its outcome is counted in the same unit as the request.

        A repeated id keeps its first variant (and any outcome already counted for it).
        """
        joins = self._joins.get(name)
        if joins is None:
            joins = self._joins[name] = OrderedDict()
        if request_id not in joins:
            joins[request_id] = _Answered(variant, unit)
            if len(joins) > self.max_ids:
                joins.popitem(last=False)

    def __len__(self) -> int:
        return sum(len(joins) for joins in self._joins.values())

    def variant_of(self, name: str, request_id: str) -> Variant:
        """The variant that answered ``request_id``; NotFound when it is not remembered."""
        return self._entry(name, request_id).variant

    def unit_of(self, name: str, request_id: str) -> int | None:
        """The analysis unit of ``request_id`` (None when it was counted or none was known)."""
        entry = self._entry(name, request_id)
        return entry.unit if isinstance(entry, _Answered) else None

    def _entry(self, name: str, request_id: str) -> _Answered | _Recorded:
        joins = self._joins.get(name)
        entry = joins.get(request_id.encode()) if joins is not None else None
        if entry is None:
            raise NotFound(
                f"no request '{request_id}' of '{name}' is known here",
                hint=f"send the x-request-id of a 200 answer from this server; it keeps the last "
                f"{self.max_ids:,} per model, in memory (not across restarts or other gateways)",
                detail={"field": "request_id"},
            )
        return entry

    def record(self, name: str, feedback: Feedback) -> tuple[Variant, bool]:
        """Fold the outcome into the answering variant's statistics, once per request id.

        Returns the variant and whether this call counted it (False for a repeat of the same
        outcome); a different outcome for an id already counted raises Conflict.
        """
        entry = self._entry(name, feedback.request_id)
        if isinstance(entry, _Recorded):
            if entry.feedback != feedback:
                raise Conflict(
                    f"request '{feedback.request_id}' already has the outcome "
                    f"{entry.feedback.to_dict()}; {feedback.to_dict()} was not counted",
                    hint="each request counts once; send feedback for another request id",
                    detail={"field": "request_id", "recorded": entry.feedback.to_dict()},
                )
            return entry.variant, False
        entry.variant.record_outcome(value=feedback.value, label=feedback.label, unit=entry.unit)
        self._joins[name][feedback.request_id.encode()] = _Recorded(entry.variant, feedback)
        return entry.variant, True


# ------------------------------------------------------------------------ the endpoint


async def feedback(app: ServingApp, exchange: Exchange) -> Response:
    """Join an outcome to the variant that answered its request, and count it once."""
    name = exchange.params["name"]
    outcome = parse_feedback(exchange.body)
    deployments = app.deployments
    if name not in app.variants and (deployments is None or name not in deployments.live):
        served = sorted({*app.variants, *(deployments.live if deployments else ())})
        raise NotFound(f"model '{name}' is not served here", hint=f"models served: {served or 'none yet'}")
    if deployments is not None and deployments.persist_joins and name in deployments.live:
        variant, is_counted = await _claim(app, name, outcome)
    else:
        variant = app.feedback.variant_of(name, outcome.request_id)
        _, is_counted = app.feedback.record(name, outcome)
    served_as = _served_as(app, name, variant)
    return Response(
        200,
        orjson.dumps(
            {
                "model": name,
                "request_id": outcome.request_id,
                "variant": served_as,
                "model_version": variant.model_version,
                "outcome": outcome.to_dict(),
                "counted": is_counted,
                "duplicate": not is_counted,
            }
        ),
    )


async def _claim(app: ServingApp, name: str, outcome: Feedback) -> tuple[Variant, bool]:
    """The store decides, so an outcome counts once whichever gateway it reaches and however
    long after its request (joins are flushed to the store a few times a second)."""
    assert app.deployments is not None
    unit: int | None = None
    try:
        known: Variant | None = app.feedback.variant_of(name, outcome.request_id)
        unit = app.feedback.unit_of(name, outcome.request_id)
    except NotFound:
        known = None
    recorded = outcome.to_dict()
    variant, previous = await app.deployments.claim_outcome(name, outcome.request_id, known, recorded)
    if variant is None:
        raise NotFound(
            f"no request '{outcome.request_id}' of '{name}' is known",
            hint="send the x-request-id of a 200 answer of this deployment (from any gateway "
            "on this store); a redeployed variant's requests no longer count",
            detail={"field": "request_id"},
        )
    if previous is not None:
        if previous != recorded:
            raise Conflict(
                f"request '{outcome.request_id}' already has the outcome {previous}; "
                f"{recorded} was not counted",
                hint="each request counts once; send feedback for another request id",
                detail={"field": "request_id", "recorded": previous},
            )
        return variant, False
    # a request answered on another gateway has no unit known here: the next unit in turn
    variant.record_outcome(value=outcome.value, label=outcome.label, unit=unit)
    return variant, True


def _served_as(app: ServingApp, name: str, variant: Variant) -> str:
    """The name ``variant`` has under ``name`` now; NotFound once it is no longer served."""
    live = app.deployments.live.get(name) if app.deployments is not None else None
    if live is not None:
        served_as = live.name_of(variant)
        if served_as is not None:
            return served_as
    elif any(served is variant for served in app.variants.values()):
        return variant.key
    raise NotFound(
        f"the variant that answered this request of '{name}' is no longer served",
        hint="feedback counts for the variants a deployment serves now; it was redeployed since",
    )
