"""Which changed files are lockgate's own reports: the pure decisions of lockgate.tracking.outputs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lockgate.tracking.outputs import parse_manifest, render_manifest, unchanged_outputs, with_output


def test_only_files_with_the_recorded_bytes_are_left_out() -> None:
    recorded = {"gate.xml": "aa", "plot.png": "bb", "gone.json": "cc"}
    current = {"gate.xml": "aa", "plot.png": "edited", "gone.json": None, "train.py": "dd"}
    assert unchanged_outputs(current, recorded) == {"gate.xml"}
    assert unchanged_outputs(current, {}) == frozenset()


@given(
    st.dictionaries(st.text(min_size=1), st.one_of(st.none(), st.text())),
    st.dictionaries(st.text(min_size=1), st.text()),
)
def test_never_leaves_out_a_file_whose_bytes_differ(
    current: dict[str, str | None], recorded: dict[str, str]
) -> None:
    for path in unchanged_outputs(current, recorded):
        assert current[path] is not None and current[path] == recorded[path]


def test_recording_replaces_and_forgets_files_that_are_gone() -> None:
    recorded = {"a.xml": "1", "b.png": "2"}
    updated = with_output(recorded, "a.xml", "3", exists={"a.xml": True, "b.png": False})
    assert updated == {"a.xml": "3"}
    assert with_output({}, "c.md", "4") == {"c.md": "4"}


def test_manifest_round_trip_and_damage() -> None:
    assert parse_manifest(render_manifest({"r/gate.xml": "ab"})) == {"r/gate.xml": "ab"}
    for damaged in ("", "{", "[]", '{"outputs": []}', '{"outputs": {"a": 1}}'):
        assert parse_manifest(damaged) == {}
