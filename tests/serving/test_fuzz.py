"""Over a thousand malformed bodies: never a 5xx, and the server still answers correctly after."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs", "x"])
shaped = st.fixed_dictionaries(
    {},
    optional={
        "dataframe_split": st.fixed_dictionaries({}, optional={"columns": json_values, "data": json_values}),
        "dataframe_records": json_values,
        "instances": json_values,
        "inputs": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": json_values,
                    "shape": json_values,
                    "datatype": st.sampled_from(["FP64", "BYTES", "BOOL", "INT8", "??"]),
                    "data": json_values,
                },
            ),
            max_size=3,
        )
        | json_values,
    },
)
bodies = (
    st.binary(max_size=64)
    | json_values.map(orjson.dumps)
    | st.dictionaries(keys, json_values, max_size=2).map(orjson.dumps)
    | shaped.map(orjson.dumps)
)
paths = st.sampled_from(["/invocations", "/v2/models/cancer/infer"])
content_types = st.sampled_from(["application/json", "text/csv", "application/json; charset=utf-8"])


@pytest.fixture(scope="module")
def client(server: Any) -> Any:
    with httpx.Client(base_url=server.url) as http:
        yield http


@settings(
    max_examples=1100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(body=bodies, path=paths, content_type=content_types)
def test_malformed_bodies_never_cause_a_5xx(client: Any, body: bytes, path: str, content_type: str) -> None:
    response = client.post(path, content=body, headers={"content-type": content_type})
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        assert set(response.json()) >= {"error", "detail"}


def test_the_server_still_answers_correctly_after_the_fuzz(client: Any, logged_model: Any) -> None:
    body = {
        "dataframe_split": {
            "columns": logged_model.columns,
            "data": logged_model.features[:20].tolist(),
        }
    }
    response = client.post("/invocations", json=body)
    assert response.status_code == 200
    assert response.json()["predictions"] == logged_model.labels[:20].tolist()
