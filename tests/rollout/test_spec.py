"""The deployment spec: every valid form parses, every mistake names its key path and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lockgate.errors import NotFound, ValidationError
from lockgate.rollout.spec import (
    AbStrategy,
    BlueGreenStrategy,
    CanaryStrategy,
    DirectStrategy,
    LlmVariant,
    RollingStrategy,
    RoutingKey,
    ShadowStrategy,
    UpstreamEndpoint,
    Upstreams,
    VariantScaling,
    load_spec,
    parse_spec,
)


def spec_dict(**strategy: Any) -> dict[str, Any]:
    return {
        "name": "fraud",
        "variants": {"stable": "models:/fraud/3", "canary": "models:/fraud/4"},
        "baseline": "stable",
        "candidate": "canary",
        "strategy": strategy
        or {
            "type": "canary",
            "steps": [
                {"weight_percent": 5, "min_duration_s": 60, "min_requests": 500},
                {"weight_percent": 25, "min_duration_s": 60},
                {"weight_percent": 50},
            ],
        },
    }


def test_canary_spec_parses_with_defaults() -> None:
    spec = parse_spec(spec_dict())
    assert spec.name == "fraud"
    assert spec.variants == {"stable": "models:/fraud/3", "canary": "models:/fraud/4"}
    assert isinstance(spec.strategy, CanaryStrategy)
    assert [s.weight_bp for s in spec.strategy.steps] == [500, 2500, 5000]
    assert spec.strategy.steps[0].min_requests == 500
    assert spec.strategy.steps[2].min_duration_s == 0.0
    assert spec.routing_key == RoutingKey("header", "x-routing-key")
    assert spec.routing_salt == "fraud"


@pytest.mark.parametrize(
    ("strategy", "kind"),
    [
        ({"type": "direct"}, DirectStrategy),
        (
            {"type": "blue_green", "warmup": {"min_requests": 10, "max_error_rate": 0.01}},
            BlueGreenStrategy,
        ),
        ({"type": "rolling", "replicas": 4, "batch_size": 2}, RollingStrategy),
        ({"type": "shadow", "fraction": 0.1, "promote_on_pass": True}, ShadowStrategy),
        ({"type": "ab", "split_percent": 50, "max_duration_s": 3600}, AbStrategy),
    ],
)
def test_every_strategy_parses_and_round_trips(strategy: dict[str, Any], kind: type) -> None:
    spec = parse_spec(spec_dict(**strategy))
    assert isinstance(spec.strategy, kind)
    assert parse_spec(spec.to_dict()) == spec


def test_canary_spec_round_trips_through_to_dict() -> None:
    spec = parse_spec({**spec_dict(), "salt": "s1", "routing_key": {"source": "field", "name": "user_id"}})
    assert spec.routing_key == RoutingKey("field", "user_id")
    assert parse_spec(spec.to_dict()) == spec


def test_header_names_are_lowercased() -> None:
    spec = parse_spec({**spec_dict(), "routing_key": {"source": "header", "name": "X-User"}})
    assert spec.routing_key.name == "x-user"


def with_step(index: int, **fields: Any) -> dict[str, Any]:
    data = spec_dict()
    data["strategy"]["steps"][index] = {**data["strategy"]["steps"][index], **fields}
    return data


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        (with_step(2, weight_percent=150), "strategy.steps[2].weight_percent", "between 0 and 100"),
        (with_step(1, weight_percent=0), "strategy.steps[1].weight_percent", "between 0 and 100"),
        (with_step(1, weight_percent=3), "strategy.steps[1].weight_percent", "larger than"),
        (with_step(0, weight_percent=1.234), "strategy.steps[0].weight_percent", "two decimals"),
        (with_step(0, min_requests=-1), "strategy.steps[0].min_requests", "at least 0"),
        (with_step(0, min_requests=1.5), "strategy.steps[0].min_requests", "whole number"),
        (with_step(0, weight_percnt=5), "strategy.steps[0].weight_percnt", "weight_percent"),
        (with_step(0, min_duration_s="1m"), "strategy.steps[0].min_duration_s", "number"),
        ({**spec_dict(), "name": "Fraud!"}, "name", "lowercase"),
        ({**spec_dict(), "name": "x" * 64}, "name", "1-63"),
        ({**spec_dict(), "baseline": "nope"}, "baseline", "stable"),
        ({**spec_dict(), "candidate": "stable"}, "candidate", "differ"),
        ({**spec_dict(), "variants": {"stable": "models:/m/1"}}, "variants", "two variants"),
        ({**spec_dict(), "variants": {"stable": "", "canary": "x"}}, "variants.stable", "URI"),
        ({**spec_dict(), "variants": {"Big": "a", "canary": "x"}}, "variants.Big", "lowercase"),
        ({**spec_dict(), "strategy": {"type": "canery"}}, "strategy.type", "canary"),
        (
            {**spec_dict(), "strategy": {"type": "canary", "steps": []}},
            "strategy.steps",
            "at least one",
        ),
        ({**spec_dict(), "strategy": {"type": "canary"}}, "strategy.steps", "required"),
        ({**spec_dict(), "strategy": "canary"}, "strategy", "mapping"),
        ({**spec_dict(), "stratgy": {}}, "stratgy", "strategy"),
        (spec_dict(type="shadow", fraction=1.5), "strategy.fraction", "between 0 and 1"),
        (spec_dict(type="shadow", fraction=0), "strategy.fraction", "above 0"),
        (spec_dict(type="rolling", replicas=2, batch_size=3), "strategy.batch_size", "at most"),
        (spec_dict(type="rolling"), "strategy.replicas", "required"),
        (spec_dict(type="ab", split_percent=100), "strategy.split_percent", "between 0 and 100"),
        (
            spec_dict(type="ab", min_duration_s=10, max_duration_s=5),
            "strategy.max_duration_s",
            "at least",
        ),
        (
            spec_dict(type="blue_green", warmup={"shadow_fraction": 0}),
            "strategy.warmup.shadow_fraction",
            "never see",
        ),
        (
            spec_dict(type="blue_green", warmup={"max_error_rate": 2}),
            "strategy.warmup.max_error_rate",
            "between 0 and 1",
        ),
        (spec_dict(type="direct", steps=[]), "strategy.steps", "not a known key"),
        ({**spec_dict(), "routing_key": {"source": "cookie"}}, "routing_key.source", "header"),
        ({**spec_dict(), "routing_key": {"source": "field"}}, "routing_key.name", "required"),
        ({**spec_dict(), "routing_key": {"name": "bad header"}}, "routing_key.name", "header"),
        ([1, 2], "spec", "mapping"),
        ({**spec_dict(), "scaling": {"nope": {"replicas": 2}}}, "scaling.nope", "not a variant"),
        ({**spec_dict(), "scaling": {"stable": {"replicas": 0}}}, "scaling.stable.replicas", "at least 1"),
        ({**spec_dict(), "scaling": {"stable": {"replica": 2}}}, "scaling.stable.replica", "replicas"),
        ({**spec_dict(), "scaling": {"stable": {"num_cpus": 0}}}, "scaling.stable.num_cpus", "at least"),
        (
            {**spec_dict(), "scaling": {"stable": {"replicas": 2, "autoscaling": {"max_replicas": 3}}}},
            "scaling.stable.replicas",
            "not both",
        ),
        (
            {**spec_dict(), "scaling": {"stable": {"autoscaling": {"min_replicas": 1}}}},
            "scaling.stable.autoscaling.max_replicas",
            "required",
        ),
        (
            {**spec_dict(), "scaling": {"stable": {"autoscaling": {"min_replicas": 3, "max_replicas": 2}}}},
            "scaling.stable.autoscaling.max_replicas",
            "at least min_replicas",
        ),
    ],
)
def test_errors_name_the_key_path_and_the_fix(data: Any, path: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_spec(data)
    message = str(info.value)
    assert info.value.message.startswith(f"{path}: ")
    assert words in message
    assert info.value.hint is not None
    assert info.value.hint.startswith("Fix: ")
    assert info.value.detail == {"path": path}


def test_scaling_is_per_variant_optional_and_round_trips() -> None:
    plain = parse_spec(spec_dict())
    assert plain.scaling == {} and "scaling" not in plain.to_dict()
    assert plain.scaling_of("stable") == VariantScaling()
    data = {
        **spec_dict(),
        "scaling": {
            "stable": {"replicas": 3, "num_cpus": 0.5},
            "canary": {"autoscaling": {"max_replicas": 4, "target_ongoing_requests": 2}},
        },
    }
    spec = parse_spec(data)
    assert spec.scaling_of("stable") == VariantScaling(replicas=3, num_cpus=0.5)
    canary = spec.scaling_of("canary")
    assert canary.is_autoscaling and (canary.min_replicas, canary.max_replicas) == (1, 4)
    assert parse_spec(spec.to_dict()) == spec


def _upstream_spec(**endpoint: Any) -> dict[str, Any]:
    return {
        **spec_dict(),
        "variants": {"stable": "models:/fraud/3", "canary": "upstream:hosted"},
        "upstreams": {
            "allowed_hosts": ["api.example.com"],
            "endpoints": {"hosted": {"url": "https://api.example.com/v1", "model": "m", **endpoint}},
        },
    }


def test_upstreams_are_optional_and_round_trip() -> None:
    plain = parse_spec(spec_dict())
    assert plain.upstreams == Upstreams() and "upstreams" not in plain.to_dict()
    assert plain.upstream_of("stable") is None
    spec = parse_spec(_upstream_spec(api_key_env="LLM_API_KEY", timeout_s=10, retries=0))
    assert spec.upstreams.allowed_hosts == ("api.example.com",)
    assert spec.upstream_of("canary") == UpstreamEndpoint(
        "https://api.example.com/v1", "m", "LLM_API_KEY", 10.0, 5.0, 0, 0.1
    )
    assert spec.upstream_of("stable") is None
    assert parse_spec(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        (
            {**_upstream_spec(), "variants": {"stable": "models:/fraud/3", "canary": "upstream:hostd"}},
            "variants.canary",
            "'hostd' is not an upstream endpoint; Fix: use one of hosted (did you mean 'hosted'?)",
        ),
        (
            _upstream_spec(url="ftp://api.example.com/v1"),
            "upstreams.endpoints.hosted.url",
            "http:// or https://",
        ),
        (
            _upstream_spec(api_key_env="sk-live-123"),
            "upstreams.endpoints.hosted.api_key_env",
            "the key itself",
        ),
        (_upstream_spec(model=" "), "upstreams.endpoints.hosted.model", "must name the model"),
        (_upstream_spec(timeout_s=0), "upstreams.endpoints.hosted.timeout_s", "at least"),
        (_upstream_spec(retry_budget=2), "upstreams.endpoints.hosted.retry_budget", "between 0 and 1"),
    ],
)
def test_upstream_mistakes_name_the_key(data: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_spec(data)
    assert f"{path}:" in str(caught.value) and words in str(caught.value)


def test_the_llm_section_is_per_variant_optional_and_round_trips() -> None:
    plain = parse_spec(spec_dict())
    assert plain.llm == {} and "llm" not in plain.to_dict()
    data = {
        **spec_dict(),
        "llm": {
            "stable": {"prompt": "support@1", "variables": {"product": "lockgate"}},
            "canary": {"prompt": "prompts:/support/2", "price_per_1k_tokens": 0.002},
        },
    }
    spec = parse_spec(data)
    assert spec.llm["stable"] == LlmVariant("support@1", {"product": "lockgate"})
    assert spec.llm["canary"] == LlmVariant("prompts:/support/2", {}, 0.002)
    assert parse_spec(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("llm", "path", "words"),
    [
        ({"nope": {"prompt": "support@1"}}, "llm.nope", "not a variant"),
        ({"stable": {"prompt": "support"}}, "llm.stable.prompt", "not a prompt reference"),
        ({"stable": {"price_per_1k_tokens": -1}}, "llm.stable.price_per_1k_tokens", "at least"),
        ({"stable": {"variables": {"two words": "x"}}}, "llm.stable.variables", "not a template variable"),
        ({"stable": {"promt": "support@1"}}, "llm.stable.promt", "prompt"),
    ],
)
def test_llm_mistakes_name_the_key_path(llm: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_spec({**spec_dict(), "llm": llm})
    assert info.value.message.startswith(f"{path}: "), info.value.message
    assert words in str(info.value)


def test_load_spec_reads_yaml(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(
        """
name: fraud
variants: {stable: "models:/fraud/3", canary: "models:/fraud/4"}
baseline: stable
candidate: canary
strategy:
  type: canary
  steps:
    - {weight_percent: 5, min_duration_s: 60, min_requests: 500}
    - {weight_percent: 100}
routing_key: {source: field, name: user_id}
""",
        encoding="utf-8",
    )
    spec = load_spec(path)
    assert isinstance(spec.strategy, CanaryStrategy)
    assert spec.strategy.steps[-1].weight_bp == 10_000


def test_load_spec_reports_missing_files_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_spec(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(ValidationError, match="not valid YAML"):
        load_spec(bad)


def test_load_spec_names_the_file_and_line_of_every_mistake(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(
        """\
name: fraud
variants: {stable: "models:/fraud/3", canary: "models:/fraud/4"}
baseline: stable
candidate: canary
strategy:
  type: canary
  steps:
    - {weight_percent: 5, min_requests: -1}
    - {weight_percnt: 50}
routing_key: {source: field}
""",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError) as info:
        load_spec(path)
    assert info.value.message.splitlines() == [
        "deploy.yaml line 8: strategy.steps[0].min_requests: must be at least 0",
        "deploy.yaml line 9: strategy.steps[1].weight_percnt: is not a known key "
        "(known: max_duration_s, min_duration_s, min_requests, weight_percent)",
        "deploy.yaml line 10: routing_key.name: is required",
    ]
    assert info.value.hint is not None
    assert "line 9: remove it or use a known key (did you mean 'weight_percent'?)" in info.value.hint
    path.write_text(
        path.read_text().replace("min_requests: -1", "min_requests: 1").replace("percnt", "percent")
    )
    with pytest.raises(ValidationError, match=r"^deploy.yaml line 10: routing_key.name: is required"):
        load_spec(path)
    path.write_text("")
    with pytest.raises(ValidationError, match=r"^deploy.yaml: spec: the file is empty"):
        load_spec(path)
