from __future__ import annotations

import pytest

from lockgate.errors import UserError
from lockgate.tracking.refs import Ref, parse_ref, validate_alias, validate_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fraud", Ref("fraud")),
        ("fraud@3", Ref("fraud", version=3)),
        ("fraud@v3", Ref("fraud", version=3)),
        ("fraud@champion", Ref("fraud", alias="champion")),
        ("breast-cancer.v2_x@1", Ref("breast-cancer.v2_x", version=1)),
    ],
)
def test_parse_ref(text: str, expected: Ref) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize("name", ["", "-lead", "a b", "../etc", "a/b", "x" * 129, "a..b", "é"])
def test_invalid_names_name_the_rule(name: str) -> None:
    with pytest.raises(UserError, match="is not valid") as info:
        validate_name(name)
    assert info.value.hint and "letters" in info.value.hint


@pytest.mark.parametrize("alias", ["latest", "v3", "V12", "1abc", "a b"])
def test_reserved_or_bad_aliases(alias: str) -> None:
    with pytest.raises(UserError):
        validate_alias(alias)


def test_version_zero_and_alias_where_not_allowed() -> None:
    with pytest.raises(UserError, match="must be 1 or more"):
        parse_ref("fraud@0")
    with pytest.raises(UserError, match="not a version number"):
        parse_ref("data@latest-ish", allow_alias=False)


def test_ref_str_round_trips() -> None:
    for text in ("fraud", "fraud@3", "fraud@champion"):
        assert str(parse_ref(text)) == text
