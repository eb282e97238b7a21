"""Experiment tracking, dataset versions and the model registry, on MLflow."""

from __future__ import annotations

from lockgate.tracking.connection import Connection, connect
from lockgate.tracking.digest import (
    FileEntry,
    manifest,
    manifest_digest,
    model_sha256,
    sha256_file,
    sha256_tree,
)
from lockgate.tracking.refs import Ref, parse_ref
from lockgate.tracking.tracker import DatasetLink, TrackedRun, track

__all__ = [
    "Connection",
    "DatasetLink",
    "FileEntry",
    "Ref",
    "TrackedRun",
    "connect",
    "manifest",
    "manifest_digest",
    "model_sha256",
    "parse_ref",
    "sha256_file",
    "sha256_tree",
    "track",
]
