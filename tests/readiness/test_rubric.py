"""The ML Test Score table: 28 tests, four sections of seven, scored as Breck et al. score it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lockgate.errors import UserError
from lockgate.readiness.rubric import RUBRIC, SECTIONS, score_rubric

DOC = (Path(__file__).parents[2] / "docs" / "mlops-checklist.md").read_text(encoding="utf-8")


def test_four_sections_of_seven() -> None:
    assert len(RUBRIC) == 28
    for section in SECTIONS:
        assert len([t for t in RUBRIC if t.section == section]) == 7
    assert len({t.id for t in RUBRIC}) == 28


def test_the_docs_page_shows_exactly_the_table() -> None:
    rows = re.findall(r"^\| ([DMIN]\d) \| (.+?) \| (.+) \|$", DOC, re.M)
    assert rows == [(t.id, t.test, t.how) for t in RUBRIC]


def test_half_a_point_by_hand_one_automated_final_is_the_lowest_section() -> None:
    levels = {f"D{i}": "automated" for i in range(1, 8)}
    levels |= {f"M{i}": "manual" for i in range(1, 8)}
    levels |= {"I1": "automated", "I2": "manual", "N1": "automated", "N2": "automated"}
    score = score_rubric(levels)  # type: ignore[arg-type]
    assert score.section_scores == {"data": 7.0, "model": 3.5, "infrastructure": 1.5, "monitoring": 2.0}
    assert score.final == 1.5 and score.weakest == "infrastructure"
    missing = {t.id: pts for t, pts in score.missing_points()}
    assert missing["M1"] == 0.5 and missing["I3"] == 1.0 and "D1" not in missing


def test_an_unknown_test_is_a_user_error() -> None:
    with pytest.raises(UserError, match="Z9"):
        score_rubric({"Z9": "manual"})


def test_yours_marks_what_no_tool_checks() -> None:
    assert {t.id for t in RUBRIC if t.is_yours} >= {"D2", "D5", "I2"}
