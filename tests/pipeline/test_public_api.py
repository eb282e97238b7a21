"""The public API of lockgate.pipeline is a decision: changing it must change this test."""

from __future__ import annotations

import lockgate.pipeline

EXPECTED = [
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


def test_public_api_is_pinned() -> None:
    assert lockgate.pipeline.__all__ == EXPECTED


def test_every_public_name_exists() -> None:
    for name in EXPECTED:
        assert hasattr(lockgate.pipeline, name), name
