"""Pipelines: data snapshot → train → register → validate → optimize → deploy, rerunning what changed."""

from __future__ import annotations

from lockgate.pipeline.plan import Decision, StageRecord, decide, plan
from lockgate.pipeline.runner import (
    PipelineRun,
    StageOutcome,
    digest_path,
    dry_run,
    read_lock,
    run_pipeline,
    write_lock,
)
from lockgate.pipeline.spec import Pipeline, StageSpec, load_pipeline, parse_pipeline

__all__ = [
    "Decision",
    "Pipeline",
    "PipelineRun",
    "StageOutcome",
    "StageRecord",
    "StageSpec",
    "decide",
    "digest_path",
    "dry_run",
    "load_pipeline",
    "parse_pipeline",
    "plan",
    "read_lock",
    "run_pipeline",
    "write_lock",
]
