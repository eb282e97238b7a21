"""The public API is a decision: changing these lists must be deliberate (STYLE.md habit 2)."""

from __future__ import annotations

import lockgate
import lockgate.data
import lockgate.errors
import lockgate.tracking


def test_lockgate_all() -> None:
    assert sorted(lockgate.__all__) == sorted(
        [
            "TrackedRun",
            "__version__",
            "active_run",
            "data",
            "log_metric",
            "log_metrics",
            "log_param",
            "log_params",
            "track",
        ]
    )


def test_tracking_all() -> None:
    assert sorted(lockgate.tracking.__all__) == sorted(
        [
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
    )


def test_data_all() -> None:
    assert sorted(lockgate.data.__all__) == ["load", "path"]


def test_errors_all() -> None:
    assert sorted(lockgate.errors.__all__) == sorted(
        [
            "EXIT_CODES",
            "CheckFailed",
            "Conflict",
            "Forbidden",
            "MethodNotAllowed",
            "ModelLoadError",
            "IllegalTransition",
            "IntegrityError",
            "LockgateError",
            "NotFound",
            "PayloadTooLarge",
            "ServiceUnavailable",
            "StoreUnreachable",
            "Unauthorized",
            "Unavailable",
            "UnsupportedMediaType",
            "UpstreamError",
            "UpstreamTimeout",
            "UserError",
            "ValidationError",
            "render",
        ]
    )


def test_every_name_in_all_exists() -> None:
    for module in (lockgate, lockgate.data, lockgate.errors, lockgate.tracking):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
