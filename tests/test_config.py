"""The one YAML loader: every mistake names the file, the line, the key path and the fix."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

import pytest
from pydantic import Discriminator, Field, Tag, model_validator

import lockgate.config
from lockgate.config import (
    Document,
    Problems,
    Schema,
    at_least,
    load,
    one_of,
    parse_yaml,
    problem,
    read_yaml,
)
from lockgate.errors import NotFound, ValidationError


class Step(Schema):
    weight: Annotated[float, at_least(0)]
    note: str = ""


class Wait(Schema):
    wait_s: float = 0.0


def _step_or_wait(value: Any) -> str:
    return "wait" if isinstance(value, Wait) or (isinstance(value, dict) and "wait_s" in value) else "step"


class Fast(Schema):
    type: Literal["fast"]


class Slow(Schema):
    type: Literal["slow"]
    steps: list[
        Annotated[Annotated[Step, Tag("step")] | Annotated[Wait, Tag("wait")], Discriminator(_step_or_wait)]
    ]
    mode: Annotated[Literal["up", "down"], one_of("up", "down", fix="say which way")] = "up"

    @model_validator(mode="after")
    def _growing(self) -> Self:
        previous = None
        for index, step in enumerate(self.steps):
            if isinstance(step, Step):
                if previous is not None and step.weight <= previous:
                    raise problem("must grow", fix="list larger weights later", at=("steps", index, "weight"))
                previous = step.weight
        return self


class Plan(Schema):
    name: str
    count: int = 1
    plan: Annotated[Fast | Slow, Field(discriminator="type")]
    labels: dict[str, str] = Field(default_factory=dict)


GOOD = textwrap.dedent(
    """\
    name: demo
    count: 2
    plan:
      type: slow
      steps:
        - {weight: 1}
        - {wait_s: 5}
        - weight: 2
          note: last
    """
)


def _error(text: str, **kwargs: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        load(Plan, parse_yaml(text, "plan.yaml"), **kwargs)
    assert info.value.exit_code == 2
    return info.value


def test_a_good_file_loads_into_the_model() -> None:
    plan = load(Plan, parse_yaml(GOOD, "plan.yaml"))
    assert isinstance(plan.plan, Slow)
    assert [type(s).__name__ for s in plan.plan.steps] == ["Step", "Wait", "Step"]
    assert plan.count == 2


def test_an_unknown_key_names_its_line_and_the_known_keys() -> None:
    error = _error(GOOD.replace("note: last", "nte: last"), docs="docs/plans.md")
    assert error.message == ("plan.yaml line 9: plan.steps[2].nte: is not a known key (known: note, weight)")
    assert error.hint == (
        "Fix: remove it or use a known key (did you mean 'note'?); see docs/plans.md for every key."
    )
    assert error.detail == {"path": "plan.steps[2].nte", "file": "plan.yaml", "line": 9}


def test_a_typo_of_a_required_key_is_one_problem_not_two() -> None:
    error = _error(GOOD.replace("- weight: 2", "- wieght: 2"))
    assert error.message == "plan.yaml line 8: plan.steps[2].wieght: is not a known key (known: note, weight)"


def test_a_wrong_type_says_what_was_written() -> None:
    error = _error(GOOD.replace("count: 2", "count: '2'"))
    assert error.message == "plan.yaml line 2: count: must be a whole number"
    assert error.hint is not None and "not '2'" in error.hint
    assert _error(GOOD.replace("{weight: 1}", "{weight: lots}")).message == (
        "plan.yaml line 6: plan.steps[0].weight: must be a number"
    )


def test_the_path_goes_through_list_indexes_and_leaves_out_union_tags() -> None:
    # the error is inside `slow` (a tagged member) and inside one `step` of a tagged list
    error = _error(GOOD.replace("weight: 2", "weight: -2"))
    assert error.message == "plan.yaml line 8: plan.steps[2].weight: must be at least 0"
    assert error.hint == "Fix: use a value >= 0."


def test_a_validator_names_a_key_below_it_and_the_fix() -> None:
    error = _error(GOOD.replace("weight: 2", "weight: 0.5"))
    assert error.message == "plan.yaml line 8: plan.steps[2].weight: must grow"
    assert error.hint == "Fix: list larger weights later."


def test_tags_and_choices_are_named_with_the_closest_one() -> None:
    error = _error(GOOD.replace("type: slow", "type: slw"))
    assert error.message == "plan.yaml line 4: plan.type: unknown plan 'slw'"
    assert error.hint == "Fix: use one of fast, slow (did you mean 'slow'?)."
    assert _error(GOOD.replace("type: slow\n", "")).message == "plan.yaml line 3: plan.type: is required"
    choice = _error(GOOD + "  mode: dwn\n")
    assert choice.message == "plan.yaml line 10: plan.mode: must be one of up, down, not 'dwn'"
    assert choice.hint == "Fix: say which way (did you mean 'down'?)."


def test_a_missing_key_points_at_its_parent() -> None:
    assert _error(GOOD.replace("name: demo\n", "")).message == "plan.yaml line 1: name: is required"


def test_every_problem_is_reported_in_line_order_with_each_fix() -> None:
    text = GOOD.replace("count: 2", "count: many").replace("note: last", "note: [1]") + "name: again\n"
    error = _error(text)
    assert error.message.splitlines() == [
        "plan.yaml line 2: count: must be a whole number",
        "plan.yaml line 9: plan.steps[2].note: must be text",
        "plan.yaml line 10: name: is given twice",
    ]
    assert error.hint is not None
    assert error.hint.startswith("Fix: line 2: write a whole number, e.g. 500, not 'many'; line 9: quote")
    assert [p["line"] for p in error.detail["problems"]] == [2, 9, 10]


def test_a_file_that_is_not_yaml_names_the_line() -> None:
    error = _error("name: demo\nplan: {type: [fast\n")
    assert error.message.startswith("plan.yaml line 3: not valid YAML: ")
    assert error.hint == "Fix: check the indentation and quoting at that line."


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_an_empty_file_says_where_to_start(text: str) -> None:
    error = _error(text, example="examples/plan.yaml")
    assert error.message == "plan.yaml: (top level): the file is empty"
    assert error.hint == "Fix: start from examples/plan.yaml."


def test_a_file_that_is_not_a_mapping() -> None:
    error = _error("- 1\n- 2\n", root="plan")
    assert error.message == "plan.yaml line 1: plan: must be a mapping of keys to values"


def test_plain_data_has_no_file_and_no_lines() -> None:
    with pytest.raises(ValidationError) as info:
        load(Plan, {"name": "demo", "plan": {"type": "slow", "steps": [{"weight": "1"}]}})
    assert info.value.message == "plan.steps[0].weight: must be a number"
    assert info.value.detail == {"path": "plan.steps[0].weight"}


def test_problems_gather_checks_outside_pydantic() -> None:
    document = parse_yaml(GOOD, "plan.yaml")
    problems = Problems(document)
    assert problems.validate(Step, {"weight": -1}, at=("plan", "steps", 0)) is None
    problems.add(("labels", "team"), "is not a team", "name a team")
    problems.add(("plan", "steps", 2), "is too late")
    with pytest.raises(ValidationError) as info:
        problems.raise_if_any()
    assert info.value.message.splitlines() == [
        "plan.yaml line 1: labels.team: is not a team",  # not in the file: the top of it
        "plan.yaml line 6: plan.steps[0].weight: must be at least 0",
        "plan.yaml line 8: plan.steps[2]: is too late",
    ]


def test_null_is_the_default_where_a_model_says_so() -> None:
    class Lenient(Schema):
        null_is_default: ClassVar[bool] = True
        null_is_a_value: ClassVar[frozenset[str]] = frozenset({"limit"})
        size: int = 3
        limit: int | None = 1

    assert load(Lenient, parse_yaml("size:\nlimit:\n", "x.yaml")) == Lenient(size=3, limit=None)
    with pytest.raises(ValidationError, match="line 2: sise: is not a known key"):
        load(Lenient, parse_yaml("size: 2\nsise:\n", "x.yaml"))
    with pytest.raises(ValidationError, match="count: must be a whole number"):  # Plan does not say so
        load(Plan, {"name": "n", "count": None, "plan": {"type": "fast"}})


def test_numbers_are_finite() -> None:
    with pytest.raises(ValidationError, match=r"plan.steps\[0\].weight: must be finite"):
        load(Plan, parse_yaml("name: n\nplan: {type: slow, steps: [{weight: .inf}]}\n", "p.yaml"))


def test_read_yaml_names_a_missing_file_and_reads_a_present_one(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"plan file '.*absent.yaml' does not exist"):
        read_yaml(tmp_path / "absent.yaml", what="plan file", hint="write one")
    (tmp_path / "plan.yaml").write_text(GOOD, encoding="utf-8")
    document = read_yaml(tmp_path / "plan.yaml", what="plan file", hint="write one")
    assert document.source == "plan.yaml" and document.text == GOOD
    assert document.line_of(("plan", "steps", 2, "note")) == 9
    assert document.line_of(("plan", "steps", 2, "absent")) == 8


def test_the_public_api() -> None:
    assert sorted(lockgate.config.__all__) == [
        "Document",
        "Loc",
        "Problem",
        "Problems",
        "Schema",
        "at_least",
        "did_you_mean",
        "dotted",
        "load",
        "one_of",
        "parse_yaml",
        "problem",
        "read_yaml",
    ]
    assert isinstance(Document(None).lines, dict)


def test_the_cli_and_the_rollout_core_start_without_the_loader() -> None:
    """pydantic and yaml load when a file is read, not when `lockgate --help` runs or the core imports."""
    probe = (
        "import sys\n"
        "import lockgate.rollout, lockgate.rollout.controller\n"
        "from lockgate.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'yaml', 'pydantic_core')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]
