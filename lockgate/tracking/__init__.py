"""Experiment tracking, dataset versions and the model registry, on MLflow."""

from __future__ import annotations

from lockgate.tracking.digest import FileEntry, manifest, manifest_digest, sha256_file, sha256_tree

__all__ = ["FileEntry", "manifest", "manifest_digest", "sha256_file", "sha256_tree"]
