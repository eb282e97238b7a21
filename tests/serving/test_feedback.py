"""Feedback: outcomes joined by request id to the variant that answered, on the real server.

Unit tests for the body parser and the bounded join map; integration tests on a real server with
an A/B deployment (the status shows each variant's outcomes), a plain model, bad bodies, and
``lockgate analyze`` through the in-process CLI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from lockgate.errors import Conflict, NotFound, UserError, ValidationError
from lockgate.serving.client import send_feedback
from lockgate.serving.feedback import Feedback, FeedbackJoins, parse_feedback
from lockgate.serving.predictor import FunctionPredictor
from lockgate.serving.signature import FieldSpec, Signature
from lockgate.serving.variant import Variant
from tests.support import AUTH, TOKEN

pytestmark = [
    # saving the session's broken pyfunc makes MLflow ask for type hints; it needs none
    pytest.mark.filterwarnings("ignore:.*Add type hints to the `predict` method:UserWarning"),
]


def _variant(name: str = "m") -> Variant:
    signature = Signature("columns", (FieldSpec("a", "float64"),))
    return Variant(name, "1", FunctionPredictor(lambda x: np.zeros(len(x)), signature))


# ---------------------------------------------------------------------- unit


def test_parse_feedback_reads_a_value_or_a_label() -> None:
    assert parse_feedback(b'{"request_id": "r1", "value": 2}') == Feedback("r1", value=2.0)
    assert parse_feedback(b'{"request_id": "r1", "label": true}') == Feedback("r1", label=True)
    assert parse_feedback(b'{"request_id": "r1", "label": 0}') == Feedback("r1", label=False)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"value": 1}', "request_id"),
        (b'{"request_id": 7, "value": 1}', "request_id"),
        (b'{"request_id": "r"}', "value"),
        (b'{"request_id": "r", "value": 1, "label": 1}', "value"),
        (b'{"request_id": "r", "value": "high"}', "value"),
        (b'{"request_id": "r", "value": true}', "value"),
        (b'{"request_id": "r", "label": 2}', "label"),
        (b'{"request_id": "r", "label": 1.0}', "label"),
        (b'{"request_id": "r", "label": 1, "score": 3}', "score"),
    ],
)
def test_bad_fields_are_422_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_feedback(body)
    assert caught.value.http_status == 422
    assert caught.value.detail == {"field": field}
    assert field in str(caught.value)


def test_bad_json_is_400() -> None:
    for body in (b"not json", b"[1, 2]"):
        with pytest.raises(UserError) as caught:
            parse_feedback(body)
        assert caught.value.http_status == 400


def test_joins_are_bounded_idempotent_and_counted_into_the_variant() -> None:
    joins = FeedbackJoins(max_ids=3)
    a, b = _variant("a"), _variant("b")
    for i, variant in enumerate([a, b, a, b]):
        joins.remember("m", f"id-{i}".encode(), variant)
    assert len(joins) == 3
    with pytest.raises(NotFound, match="id-0"):
        joins.variant_of("m", "id-0")  # the oldest was evicted
    assert joins.variant_of("m", "id-1") is b
    assert joins.record("m", Feedback("id-1", label=True)) == (b, True)
    assert joins.record("m", Feedback("id-1", label=True)) == (b, False)
    with pytest.raises(Conflict, match="already has the outcome"):
        joins.record("m", Feedback("id-1", label=False))
    joins.record("m", Feedback("id-2", value=4.5))
    assert b.snapshot().conversions.to_dict() == {"trials": 1, "successes": 1}
    assert a.snapshot().outcome.count == 1 and a.snapshot().outcome.mean == 4.5
    joins.remember("m", b"id-1", a)  # a repeated id keeps its first variant and outcome
    assert joins.variant_of("m", "id-1") is b
    with pytest.raises(NotFound):
        joins.variant_of("other", "id-1")
    with pytest.raises(UserError):
        FeedbackJoins(max_ids=0)


# ---------------------------------------------------------------------- integration


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]) -> Iterator[Any]:
    """A real server with an A/B deployment 'exp' (stable = good model, next = weak), started."""
    from lockgate.rollout.sqlstore import SqlStore
    from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread

    root = tmp_path_factory.mktemp("feedback")
    config = ServeConfig("", admin_token=TOKEN, tick_s=0.05, follow_registry=False, allow_unverified=True)
    store = SqlStore(f"sqlite:///{root / 'rollouts.db'}")
    handle = run_server_in_thread(build_app(config=config, deployments=build_deployments(config, store)))
    spec = {
        "name": "exp",
        "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
        "baseline": "stable",
        "candidate": "next",
        "strategy": {"type": "ab", "split_percent": 50, "min_requests": 1_000_000},
        "analysis": {
            "policy": "sequential",
            "guardrails": {"latency": None},
        },  # latency noise must not decide
    }
    response = httpx.put(f"{handle.url}/admin/deployments/exp", json=spec, headers=AUTH, timeout=60)
    assert response.status_code == 201, response.text
    started = httpx.post(f"{handle.url}/admin/deployments/exp/start", json={}, headers=AUTH, timeout=30)
    assert started.status_code == 200, started.text
    yield handle
    handle.stop()
    store.close()


def _answers(url: str, logged_model: Any, n: int, start: int = 0) -> list[tuple[str, str]]:
    """(x-request-id, variant) of ``n`` keyed V2 requests to 'exp'."""
    body = {
        "inputs": [
            {"name": "x", "shape": [1, 30], "datatype": "FP64", "data": logged_model.features[0].tolist()}
        ]
    }
    out = []
    with httpx.Client(timeout=30) as client:
        for i in range(start, start + n):
            response = client.post(
                f"{url}/v2/models/exp/infer", json=body, headers={"x-routing-key": f"u{i}"}
            )
            assert response.status_code == 200, response.text
            out.append((response.headers["x-request-id"], response.headers["x-model-name"]))
    return out


def _status(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/admin/deployments/exp", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.integration
def test_feedback_joins_to_the_variant_that_answered(gateway: Any, logged_model: Any) -> None:
    url = gateway.url
    before = _status(url)["variants"]
    answers = _answers(url, logged_model, 60)
    assert {variant for _, variant in answers} == {"stable", "next"}
    sent = {"stable": [0, 0], "next": [0, 0]}  # [labels, successes]
    for index, (request_id, variant) in enumerate(answers):
        label = variant == "stable" or index % 4 == 0
        answer = send_feedback(url, "exp", request_id, label=label)
        assert answer["variant"] == variant and answer["counted"] is True
        sent[variant][0] += 1
        sent[variant][1] += int(label)
    status = _status(url)["variants"]
    for variant, (labels, successes) in sent.items():
        conversions = status[variant]["conversions"]
        assert conversions["n"] - before[variant]["conversions"]["n"] == labels
        assert conversions["successes"] - before[variant]["conversions"]["successes"] == successes
    # numeric outcomes go to the outcome moments of the same variant
    (request_id, variant), *_ = _answers(url, logged_model, 1, start=1000)
    send_feedback(url, "exp", request_id, value=42.5)
    outcomes = _status(url)["variants"][variant]["outcomes"]
    assert outcomes["n"] >= 1


@pytest.mark.integration
def test_unknown_ids_are_404_and_repeats_are_idempotent(gateway: Any, logged_model: Any) -> None:
    url = gateway.url
    response = httpx.post(f"{url}/v2/models/exp/feedback", json={"request_id": "never-seen", "label": 1})
    assert response.status_code == 404
    assert "never-seen" in response.json()["detail"]
    with pytest.raises(NotFound):
        send_feedback(url, "exp", "never-seen", label=1)
    assert (
        httpx.post(f"{url}/v2/models/nope/feedback", json={"request_id": "x", "label": 1}).status_code == 404
    )
    (request_id, variant), *_ = _answers(url, logged_model, 1, start=2000)
    first = send_feedback(url, "exp", request_id, value=3.0)
    counted = _status(url)["variants"][variant]["outcomes"]["n"]
    again = send_feedback(url, "exp", request_id, value=3.0)
    assert first["counted"] and not again["counted"] and again["duplicate"]
    conflict = httpx.post(f"{url}/v2/models/exp/feedback", json={"request_id": request_id, "value": 9.0})
    assert conflict.status_code == 409
    assert conflict.json()["context"]["recorded"] == {"value": 3.0}
    assert _status(url)["variants"][variant]["outcomes"]["n"] == counted


@pytest.mark.integration
def test_bad_bodies_are_4xx_and_the_server_keeps_serving(gateway: Any, logged_model: Any) -> None:
    url = f"{gateway.url}/v2/models/exp/feedback"
    json_header = {"content-type": "application/json"}
    assert httpx.post(url, content=b"{oops", headers=json_header).status_code == 400
    missing = httpx.post(url, json={"label": 1})
    assert missing.status_code == 422 and missing.json()["context"] == {"field": "request_id"}
    assert httpx.post(url, json={"request_id": "r", "label": 7}).json()["context"] == {"field": "label"}
    assert httpx.post(url, content=b"request_id=r", headers={"content-type": "text/plain"}).status_code == 415
    assert httpx.get(url).status_code == 405
    assert httpx.post(url, content=b"x" * 200_000, headers=json_header).status_code in (400, 413)
    assert len(_answers(gateway.url, logged_model, 3, start=3000)) == 3


@pytest.mark.integration
def test_plain_models_take_feedback_too(server: Any, logged_model: Any) -> None:
    row = {"dataframe_split": {"columns": logged_model.columns, "data": [logged_model.features[0].tolist()]}}
    response = httpx.post(f"{server.url}/invocations", json=row, headers={"x-request-id": "plain-1"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "plain-1"
    answer = send_feedback(server.url, "cancer", "plain-1", label=0)
    assert answer["variant"] == "cancer" and answer["counted"]


@pytest.mark.integration
def test_lockgate_analyze_reads_the_running_deployment(gateway: Any, logged_model: Any, cli: Any) -> None:
    url = gateway.url
    for request_id, variant in _answers(url, logged_model, 40, start=4000):
        send_feedback(url, "exp", request_id, label=variant == "stable")
    code, out, err = cli(
        "analyze", "exp", "--url", url, "--token", TOKEN, "--metric", "conversions", "--json"
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["metric"] == "conversions" and document["baseline"] == "stable"
    rows = {row["variant"]: row for row in document["variants"]}
    assert rows["stable"]["verdict"] == "baseline"
    assert rows["next"]["lift"] < 0 and rows["next"]["p_value"] is not None
    code, out, err = cli("analyze", "exp", "--url", url, "--token", TOKEN)
    assert code == 0, err
    assert "conversion rate" in out and "stable (baseline)" in out and "p (always valid)" in out
    code, _, err = cli("analyze", "missing", "--url", url, "--token", TOKEN)
    assert code == 2 and "missing" in err
    code, _, err = cli("analyze", "exp", "--url", "http://127.0.0.1:9", "--token", TOKEN)
    assert code == 3 and "cannot reach" in err  # an outage: exit code 3
