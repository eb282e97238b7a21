from __future__ import annotations

import pytest

from lockgate import errors


@pytest.mark.parametrize(
    ("cls", "status", "exit_code"),
    [
        (errors.UserError, 400, 2),
        (errors.ValidationError, 422, 2),
        (errors.NotFound, 404, 2),
        (errors.Conflict, 409, 2),
        (errors.IllegalTransition, 409, 2),
        (errors.IntegrityError, 409, 2),
        (errors.Unauthorized, 401, 2),
        (errors.Forbidden, 403, 2),
        (errors.MethodNotAllowed, 405, 2),
        (errors.PayloadTooLarge, 413, 2),
        (errors.UnsupportedMediaType, 415, 2),
        (errors.StoreUnreachable, 503, 3),
        (errors.ServiceUnavailable, 503, 3),
        (errors.Unavailable, 503, 3),
        (errors.UpstreamError, 502, 3),
        (errors.UpstreamTimeout, 504, 3),
        (errors.CheckFailed, 422, 1),
        (errors.LockgateError, 500, 1),
    ],
)
def test_each_error_knows_its_status_and_exit_code(
    cls: type[errors.LockgateError], status: int, exit_code: int
) -> None:
    exc = cls("model 'fraud' has no version 7", hint="versions are 1-5")
    assert exc.http_status == status
    assert exc.exit_code == exit_code
    assert isinstance(exc, errors.LockgateError)


def test_user_errors_are_4xx_and_bugs_are_not_user_errors() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, errors.UserError):
            assert 400 <= cls.http_status < 500, name
    # an outage is nobody's bad input: not a UserError, so the CLI does not say "fix your input"
    assert not issubclass(errors.ServiceUnavailable, errors.UserError)
    assert not issubclass(errors.StoreUnreachable, errors.UserError)


def test_every_error_class_has_a_documented_exit_code() -> None:
    classes = [getattr(errors, n) for n in errors.__all__]
    for cls in (c for c in classes if isinstance(c, type) and issubclass(c, errors.LockgateError)):
        assert cls.exit_code in errors.EXIT_CODES, cls.__name__


def test_the_readme_table_is_the_exit_codes() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for code, meaning in errors.EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in readme, code


def test_render_is_the_label_the_message_and_the_hint() -> None:
    assert errors.render(errors.NotFound("no model 'x'", hint="see `lockgate models list`")) == [
        "error: no model 'x'",
        "hint: see `lockgate models list`",
    ]
    assert errors.render(errors.CheckFailed("drift in 2 feature(s)")) == ["failed: drift in 2 feature(s)"]


def test_to_dict_is_the_api_error_body() -> None:
    exc = errors.NotFound("model 'fraud' has no version 7", hint="versions are 1-5", detail={"version": 7})
    body = exc.to_dict()
    assert body["error"] == "not_found"
    assert body["detail"] == "model 'fraud' has no version 7; versions are 1-5"
    assert body["context"] == {"version": 7}
    assert str(exc) == body["detail"]


def test_service_unavailable_carries_retry_after() -> None:
    assert errors.ServiceUnavailable("queue full", retry_after_s=2.5).retry_after_s == 2.5
