"""Pipelines of small shell stages: skip what is unchanged, rerun exactly what depends on a change, resume."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lockgate.errors import UserError, ValidationError
from lockgate.pipeline import dry_run, load_pipeline, parse_pipeline, read_lock, run_pipeline

# raw.txt → data → clean.txt → train → model.txt → validate (also reads policy.txt) → report.txt.
# Each stage appends its name to ran.log, so a test sees exactly which stages ran.
PIPELINE = """\
version: 1
stages:
  data:
    cmd: tr a-z A-Z < raw.txt > clean.txt && echo data >> ran.log
    deps: [raw.txt]
    outs: [clean.txt]
  train:
    cmd: "test ! -e fail-train && cut -c1-3 clean.txt > model.txt && echo train >> ran.log"
    deps: [clean.txt]
    code: [train.sh]
    outs: [model.txt]
  validate:
    cmd: cat model.txt policy.txt > report.txt && echo validate >> ran.log
    deps: [model.txt, policy.txt]
    outs: [report.txt]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    (tmp_path / "raw.txt").write_text("hello world\n")
    (tmp_path / "train.sh").write_text("# the training code\n")
    (tmp_path / "policy.txt").write_text("threshold 0.9\n")
    return tmp_path


def _run(project: Path, **kwargs: object) -> list[str]:
    """Run the pipeline; return the stages that ran, in order."""
    log = project / "ran.log"
    log.unlink(missing_ok=True)
    result = run_pipeline(load_pipeline(project / "pipeline.yaml"), **kwargs)  # type: ignore[arg-type]
    assert result.is_ok, result.outcomes
    return log.read_text().split() if log.exists() else []


def test_a_second_run_skips_every_stage(project: Path) -> None:
    assert _run(project) == ["data", "train", "validate"]
    assert (project / "report.txt").read_text() == "HEL\nthreshold 0.9\n"
    assert _run(project) == []
    assert set(read_lock(project / "pipeline.lock")) == {"data", "train", "validate"}


def test_a_changed_input_reruns_exactly_the_stages_that_depend_on_it(project: Path) -> None:
    _run(project)
    (project / "policy.txt").write_text("threshold 0.95\n")
    assert _run(project) == ["validate"]
    (project / "train.sh").write_text("# new training code\n")
    assert _run(project) == ["train"], "same model out, so validate is skipped"
    (project / "raw.txt").write_text("goodbye world\n")
    assert _run(project) == ["data", "train", "validate"]
    (project / "raw.txt").write_text("GOODBYE WORLD\n")
    assert _run(project) == ["data"], "data writes the same clean.txt, so nothing after it reruns"


def test_a_changed_command_or_a_deleted_output_reruns_the_stage(project: Path) -> None:
    _run(project)
    (project / "report.txt").unlink()
    assert _run(project) == ["validate"]
    text = (project / "pipeline.yaml").read_text().replace("cut -c1-3", "cut -c1-4")
    (project / "pipeline.yaml").write_text(text)
    assert _run(project) == ["train", "validate"]
    assert _run(project, force=frozenset({"data"})) == ["data"]


def test_a_failed_stage_stops_the_run_and_the_next_run_resumes_there(project: Path) -> None:
    (project / "fail-train").write_text("")
    result = run_pipeline(load_pipeline(project / "pipeline.yaml"))
    assert result.failed == "train"
    assert [(o.stage, o.status) for o in result.outcomes] == [
        ("data", "ran"),
        ("train", "failed"),
        ("validate", "not run"),
    ]
    assert result.outcomes[1].exit_code == 1
    assert set(read_lock(project / "pipeline.lock")) == {"data"}
    (project / "fail-train").unlink()
    assert _run(project) == ["train", "validate"]


def test_the_dry_run_plans_without_running(project: Path) -> None:
    pipeline = load_pipeline(project / "pipeline.yaml")
    assert [d.should_run for d in dry_run(pipeline)] == [True, True, True]
    assert not (project / "ran.log").exists()
    _run(project)
    (project / "raw.txt").write_text("changed\n")
    planned = dry_run(pipeline)
    assert [(d.stage, d.should_run) for d in planned] == [("data", True), ("train", True), ("validate", True)]
    assert planned[0].reason == "input changed: raw.txt"
    assert planned[1].reason == "may run: its inputs come from data"
    with pytest.raises(UserError, match=r"--force names no stage of pipeline\.yaml: deploy"):
        dry_run(pipeline, force=frozenset({"deploy"}))


def test_a_callable_stage_gets_its_params(project: Path) -> None:
    text = """\
stages:
  write:
    call: pathlib:Path.touch
    outs: [x]
"""
    with pytest.raises(ValidationError, match=r"line 3: stages.write.call: .*write module.path:function"):
        parse_pipeline(text, project)
    good = "stages:\n  write:\n    call: shutil:copyfile\n    params: {src: raw.txt, dst: copy.txt}\n"
    good += "    deps: [raw.txt]\n    outs: [copy.txt]\n"
    (project / "pipeline.yaml").write_text(good)
    result = run_pipeline(load_pipeline(project / "pipeline.yaml"))
    assert result.is_ok and (project / "copy.txt").read_text() == "hello world\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "stages:\n  a:\n    cmd: x\n    outs: [o]\n    ouputs: [p]\n",
            "line 5: stages.a.ouputs: is not a known key",
        ),
        ("stages:\n  a:\n    deps: [raw.txt]\n", "line 2: stages.a: give exactly one of cmd, call"),
        (
            "stages:\n  a:\n    cmd: x\n    deps: [o]\n  b:\n    cmd: y\n    outs: [o]\n",
            "line 4: stages.a.deps[0]: 'o' is written by stage 'b', which does not run before 'a'",
        ),
        ("stages:\n  a:\n    cmd: x\n    deps: [nowhere.csv]\n", "'nowhere.csv' does not exist and no stage"),
        ("stages:\n  a:\n    cmd: x\n    outs: [o]\n  b:\n    cmd: y\n    outs: [o]\n", "already an out of"),
        ("stages: {}\n", "stages: must name at least one stage"),
        ("stages:\n  a: [\n", "not valid YAML"),
    ],
)
def test_a_bad_pipeline_file_names_the_key_and_line(project: Path, text: str, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        parse_pipeline(text, project)


def test_the_cli_prints_the_plan_runs_and_exits_1_on_a_failed_stage(
    project: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    pipeline = str(project / "pipeline.yaml")
    code, out, _ = cli("pipeline", "run", pipeline, "--dry-run")
    assert code == 0 and "plan for pipeline.yaml" in out and "no successful run recorded" in out
    code, out, _ = cli("pipeline", "run", pipeline)
    assert code == 0 and "[3/3] validate: ✓ ran" in out and "pipeline done: 3 ran, 0 skipped" in out
    (project / "raw.txt").write_text("new\n")
    (project / "fail-train").write_text("")
    code, out, _ = cli("pipeline", "run", pipeline)
    assert code == 1 and "stage 'train' failed (exit code 1)" in out
    code, out, err = cli("pipeline", "run", str(project / "missing.yaml"))
    assert code == 2 and "pipeline file" in err and "does not exist" in err
