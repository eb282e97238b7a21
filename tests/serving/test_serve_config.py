"""ServeConfig: every option checked when it is made, with a message naming the option."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.errors import UserError
from lockgate.rollout.spec import parse_spec
from lockgate.serving.serve_config import ServeConfig


def test_the_defaults_bind_loopback_with_one_worker_and_one_thread() -> None:
    config = ServeConfig("models:/m@champion")
    assert (config.host, config.port, config.workers, config.threads) == ("127.0.0.1", 8080, 1, 1)
    assert not config.has_deployments


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"port": 70000}, "port 70000"),
        ({"workers": 0}, "workers must be >= 1"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"threads": 0}, "threads must be >= 1"),
        ({"graceful_timeout_s": 0}, "graceful_timeout_s"),
        ({"drift_sample_every": 0}, "drift_sample_every"),
        ({"retrain_pipeline": "p.yaml"}, "--drift-reference"),
        ({"retrain_cooldown_s": -1}, "retrain_cooldown_s"),
        ({"log_format": "xml"}, "xml"),
        ({"trace_sample": 1.5}, "1.5"),
        ({"capture_every": -1}, "capture_every"),
        ({"capture_keep": 0}, "capture_keep"),
        ({"tick_s": 0}, "tick_s"),
        ({"retire_grace_s": -1}, "retire_grace_s"),
        ({"alert_webhook": "ftp://example.com/hook"}, "ftp"),
    ],
)
def test_a_bad_option_is_a_user_error_naming_it(options: dict[str, Any], words: str) -> None:
    with pytest.raises(UserError, match=words.replace(".", r"\.").replace("-", r"\-")):
        ServeConfig("models:/m@champion", **options)


def test_two_deployments_of_one_name_are_refused() -> None:
    spec = parse_spec(
        {
            "name": "fraud",
            "variants": {"a": "models:/m/1", "b": "models:/m/2"},
            "baseline": "a",
            "candidate": "b",
            "strategy": {"type": "canary", "steps": [{"weight_percent": 10}]},
        }
    )
    with pytest.raises(UserError, match="name one deployment twice"):
        ServeConfig("models:/m@champion", deployments=(spec, spec))
