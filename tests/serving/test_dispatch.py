"""The route matcher on a small table of its own: pure, no app, no server."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.errors import MethodNotAllowed, NotFound
from lockgate.serving.dispatch import Endpoint, RouteTable
from lockgate.serving.exchange import Exchange, Response


async def _handler(app: Any, exchange: Exchange) -> Response:
    return Response(200, b"{}")


def _endpoint(method: str, path: str, **kwargs: Any) -> Endpoint:
    return Endpoint(
        method, path, _handler, summary=path, operation_id=f"{method}{path}", responses={}, **kwargs
    )


TABLE = RouteTable(
    [
        _endpoint("GET", "/things"),
        _endpoint("POST", "/things"),
        _endpoint("GET", "/things/{thing}"),
        _endpoint("GET", "/things/{thing}/history"),
        _endpoint("POST", "/things/{thing}/{verb}", path_parameters={"verb": {"enum": ["start", "stop"]}}),
        _endpoint("GET", "/things/{thing}/{part}"),
        _endpoint("POST", "/run", is_hot=True),
        _endpoint("POST", "/models/{name}/run", is_hot=True),
        _endpoint("POST", "/models/{name}/v/{version}/run", is_hot=True),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "operation", "params"),
    [
        ("GET", "/things", "GET/things", {}),
        ("GET", "/things/", "GET/things", {}),  # a trailing slash is ignored
        ("HEAD", "/things", "GET/things", {}),  # HEAD is answered as GET
        ("GET", "/things/a", "GET/things/{thing}", {"thing": "a"}),
        ("GET", "/things/a/history", "GET/things/{thing}/history", {"thing": "a"}),  # a literal wins
        ("GET", "/things/a/wheel", "GET/things/{thing}/{part}", {"thing": "a", "part": "wheel"}),
        ("POST", "/things/a/start", "POST/things/{thing}/{verb}", {"thing": "a", "verb": "start"}),
        ("POST", "/models/m/v/2/run", "POST/models/{name}/v/{version}/run", {"name": "m", "version": "2"}),
    ],
)
def test_match_finds_the_endpoint_and_its_parameters(
    method: str, path: str, operation: str, params: dict[str, str]
) -> None:
    endpoint, found = TABLE.match(method, path)
    assert endpoint.operation_id == operation
    assert found == params


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/things", "GET, HEAD, POST"),
        ("PUT", "/things/a", "GET, HEAD"),
        ("POST", "/things/a/history", "GET, HEAD"),
        ("PUT", "/things/a/start", "GET, HEAD, POST"),  # two templates match the path
        ("GET", "/run", "POST"),
    ],
)
def test_a_known_path_with_another_method_names_the_methods_it_takes(
    method: str, path: str, allow: str
) -> None:
    with pytest.raises(MethodNotAllowed) as raised:
        TABLE.match(method, path)
    assert raised.value.detail == {"allow": allow}


def test_an_unknown_path_lists_what_is_near_it() -> None:
    with pytest.raises(NotFound) as raised:
        TABLE.match("POST", "/things/a/b/c")
    assert str(raised.value) == (
        "no endpoint POST /things/a/b/c; endpoints here: GET /things/{thing}/{part}; see GET /openapi.json"
    )
    for path in ("/nothing", "/things//history", "/"):
        with pytest.raises(NotFound) as raised:
            TABLE.match("GET", path)
    assert str(raised.value) == "no endpoint GET /; see GET /openapi.json"


def test_an_enumerated_parameter_matches_only_its_choices_and_is_shown_as_them() -> None:
    table = RouteTable(
        [
            _endpoint("GET", "/things/{thing}/history"),
            _endpoint(
                "POST", "/things/{thing}/{verb}", path_parameters={"verb": {"enum": ["start", "stop"]}}
            ),
        ]
    )
    _, params = table.match("POST", "/things/a/stop")
    assert params == {"thing": "a", "verb": "stop"}
    with pytest.raises(NotFound) as raised:
        table.match("POST", "/things/a/explode")
    assert "endpoints here: GET /things/{thing}/history, POST /things/{thing}/(start|stop);" in str(
        raised.value
    )


def test_hot_paths_are_an_exact_path_or_one_parameter_between_a_prefix_and_a_suffix() -> None:
    run = TABLE.hot("POST", "/run")
    assert run is not None and run[0].path == "/run" and run[1] == {}
    model = TABLE.hot("POST", "/models/m/run")
    assert model is not None and model[0].path == "/models/{name}/run" and model[1] == {"name": "m"}
    for method, path in [
        ("GET", "/run"),
        ("POST", "/models//run"),
        ("POST", "/models/a/b/run"),
        ("POST", "/models/m/v/2/run"),  # two parameters: match() finds it
        ("POST", "/things"),
    ]:
        assert TABLE.hot(method, path) is None, (method, path)


def test_an_operation_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="GET /things twice"):
        RouteTable([_endpoint("GET", "/things"), _endpoint("GET", "/things")])
