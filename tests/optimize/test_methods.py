from __future__ import annotations

import pytest

from lockgate.errors import UserError
from lockgate.optimize.cpu import CpuInfo
from lockgate.optimize.methods import check_applicable, make_spec, spec_for, sweep_plan


def test_defaults_and_labels() -> None:
    spec = make_spec("quantize")
    assert spec.params == {"mode": "dynamic", "per_channel": True, "exclude_sensitive": False}
    assert spec.tolerance == 0.02
    assert spec.label == "quantize(dynamic, per_channel)"
    assert make_spec("onnx", tolerance=1e-3).tolerance == 1e-3


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("shrink", {}, "unknown method 'shrink'"),
        ("quantize", {"mode": "fast"}, "mode 'fast' is not one of dynamic, static"),
        ("prune", {"amount": 1.5}, r"--amount 1.5 is outside \(0, 1\)"),
        ("onnx", {"amount": 0.5}, "takes no parameter amount"),
        ("distill", {"layers": 0}, "--layers must be at least 1"),
    ],
)
def test_bad_specs_name_the_fix(method: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        make_spec(method, params)


def test_applicability() -> None:
    check_applicable(make_spec("prune"), "torch")
    with pytest.raises(UserError, match="does not apply to a sklearn model") as info:
        check_applicable(make_spec("prune"), "sklearn")
    assert info.value.hint is not None and "onnx, quantize, distill" in info.value.hint


def test_sweep_plans_only_what_applies() -> None:
    for kind in ("sklearn", "torch", "onnx", "encoder", "onnx-encoder"):
        plan = sweep_plan(kind)  # type: ignore[arg-type]
        assert plan
        for spec in plan:
            check_applicable(spec, kind)  # type: ignore[arg-type]
    assert "layers" not in spec_for(make_spec("distill"), "sklearn").params
    assert "student" not in spec_for(make_spec("distill"), "encoder").params


def test_bf16_is_planned_only_where_the_cpu_computes_it() -> None:
    amx = CpuInfo("Xeon with AMX", 2, ("avx512f", "avx512_bf16", "amx_bf16"))
    plain = CpuInfo("older Xeon", 2, ("avx2", "fma"))
    labels = [spec.label for spec in sweep_plan("encoder", amx)]
    assert "quantize(bf16)" in labels
    assert "quantize(bf16)" not in [spec.label for spec in sweep_plan("encoder", plain)]
    assert "quantize(bf16)" not in [spec.label for spec in sweep_plan("encoder")]
    assert "quantize(bf16)" not in [spec.label for spec in sweep_plan("torch", amx)]
    with pytest.raises(UserError, match="--mode bf16 applies to sentence encoders"):
        check_applicable(make_spec("quantize", {"mode": "bf16"}), "sklearn")
