"""The optimization methods, their parameters (validated once, at the edge) and the sweep plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lockgate.errors import UserError
from lockgate.optimize.cpu import CpuInfo

__all__ = [
    "DEFAULT_TOLERANCE",
    "METHODS",
    "Method",
    "MethodSpec",
    "ModelKind",
    "check_applicable",
    "make_spec",
    "spec_for",
    "sweep_plan",
]

Method = Literal["onnx", "quantize", "prune", "distill"]
METHODS: tuple[Method, ...] = ("onnx", "quantize", "prune", "distill")
ModelKind = Literal["sklearn", "torch", "onnx", "encoder", "onnx-encoder"]

# onnx: the largest absolute output difference to the parent; the others: the largest quality loss
# (accuracy points, or 1 - mean cosine similarity to the parent's embeddings).
DEFAULT_TOLERANCE: Mapping[Method, float] = {"onnx": 1e-4, "quantize": 0.02, "prune": 0.05, "distill": 0.05}

_ALLOWED: Mapping[str, Mapping[str, tuple[Any, ...]]] = {
    "onnx": {"exporter": ("dynamo", "torchscript")},
    # bf16: bfloat16 weights and activations in PyTorch, a candidate only where the CPU computes bf16
    "quantize": {"mode": ("dynamic", "static", "bf16")},
    "prune": {"kind": ("unstructured", "structured")},
    "distill": {"student": ("logistic", "tree")},
}
_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "onnx": {"exporter": "dynamo"},
    "quantize": {"mode": "dynamic", "per_channel": True, "exclude_sensitive": False},
    "prune": {"kind": "structured", "amount": 0.5},
    "distill": {"student": "logistic", "layers": 3, "steps": 200},
}
_APPLIES: Mapping[Method, tuple[ModelKind, ...]] = {
    "onnx": ("sklearn", "torch", "encoder"),
    "quantize": ("sklearn", "torch", "onnx", "encoder", "onnx-encoder"),
    "prune": ("torch", "encoder"),
    "distill": ("sklearn", "encoder"),
}


@dataclass(frozen=True)
class MethodSpec:
    """One optimization to try: the method, its parameters and the tolerance that gates registration."""

    method: Method
    params: Mapping[str, Any] = field(default_factory=dict)
    tolerance: float = 0.0

    @property
    def label(self) -> str:
        """A short name for tables: ``quantize(dynamic, per_channel)``."""
        shown = []
        first = ("mode", "kind", "student", "exporter")
        for key, value in sorted(self.params.items(), key=lambda kv: (kv[0] not in first, kv[0])):
            if value is True:
                shown.append(key)
            elif value is False or value is None:
                continue
            else:
                shown.append(f"{key}={value}" if not isinstance(value, str) else value)
        return f"{self.method}({', '.join(shown)})" if shown else self.method


def make_spec(
    method: str, params: Mapping[str, Any] | None = None, tolerance: float | None = None
) -> MethodSpec:
    """Validate ``method`` and ``params`` (unknown keys and values raise UserError) and fill defaults."""
    if method not in METHODS:
        raise UserError(f"unknown method '{method}'", hint=f"choose one of {', '.join(METHODS)}")
    given = {k: v for k, v in (params or {}).items() if v is not None}
    merged = {**_DEFAULTS[method], **given}
    unknown = sorted(set(merged) - set(_DEFAULTS[method]))
    if unknown:
        raise UserError(
            f"method '{method}' takes no parameter {', '.join(unknown)}",
            hint=f"its parameters are {', '.join(sorted(_DEFAULTS[method]))}",
        )
    for key, allowed in _ALLOWED[method].items():
        if merged[key] not in allowed:
            raise UserError(
                f"{key} '{merged[key]}' is not one of {', '.join(map(str, allowed))}",
                hint=f"pass --{key} {allowed[0]}",
            )
    if method == "prune" and not 0.0 < float(merged["amount"]) < 1.0:
        raise UserError(f"--amount {merged['amount']} is outside (0, 1)", hint="pass e.g. --amount 0.5")
    if method == "distill" and (int(merged["layers"]) < 1 or int(merged["steps"]) < 0):
        raise UserError("--layers must be at least 1 and --steps at least 0", hint="e.g. --layers 3")
    chosen = DEFAULT_TOLERANCE[method] if tolerance is None else float(tolerance)
    if chosen < 0:
        raise UserError(f"--tolerance {chosen} is negative", hint="pass a value of 0 or more")
    return MethodSpec(method, merged, chosen)


def check_applicable(spec: MethodSpec, kind: ModelKind) -> None:
    """Raise UserError when ``spec`` cannot apply to a model of ``kind``."""
    if spec.method == "quantize" and spec.params.get("mode") == "bf16" and kind != "encoder":
        raise UserError(
            f"--mode bf16 applies to sentence encoders (PyTorch), not to a {kind} model",
            hint="use --mode dynamic or --mode static (int8 with ONNX Runtime)",
        )
    kinds = _APPLIES[spec.method]
    if kind not in kinds:
        names = {"onnx-encoder": "exported sentence encoder"}
        raise UserError(
            f"--method {spec.method} does not apply to a {names.get(kind, kind)} model",
            hint=f"it applies to {', '.join(names.get(k, k) for k in kinds)} models; "
            f"methods for this one: {', '.join(m for m in METHODS if kind in _APPLIES[m])}",
        )


def _relevant(method: Method, kind: ModelKind, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that mean something for ``kind`` (a tabular student has no layers)."""
    out = dict(params)
    if method == "distill":
        if kind == "encoder":
            out.pop("student", None)
        else:
            out.pop("layers", None)
            out.pop("steps", None)
    if method == "onnx" and kind == "sklearn":
        out.pop("exporter", None)
    if method == "quantize" and out.get("mode") == "bf16":
        out.pop("per_channel", None)
        out.pop("exclude_sensitive", None)
    return out


def spec_for(spec: MethodSpec, kind: ModelKind) -> MethodSpec:
    """``spec`` with only the parameters that apply to ``kind`` (what lineage records)."""
    return MethodSpec(spec.method, _relevant(spec.method, kind, spec.params), spec.tolerance)


def sweep_plan(kind: ModelKind, cpu: CpuInfo | None = None) -> list[MethodSpec]:
    """The candidates ``lockgate optimize --all`` tries for a model of ``kind`` on ``cpu``: bf16 only
    where the CPU computes it (AMX or AVX-512 BF16); without it bf16 is emulated and slower."""
    plans: dict[ModelKind, list[tuple[str, dict[str, Any]]]] = {
        "sklearn": [
            ("onnx", {}),
            ("distill", {"student": "logistic"}),
            ("distill", {"student": "tree"}),
        ],
        "torch": [
            ("onnx", {}),
            ("quantize", {"mode": "dynamic", "per_channel": True}),
            ("quantize", {"mode": "static"}),
            ("prune", {"kind": "unstructured", "amount": 0.5}),
            ("prune", {"kind": "structured", "amount": 0.5}),
        ],
        "onnx": [
            ("quantize", {"mode": "dynamic", "per_channel": False}),
            ("quantize", {"mode": "dynamic", "per_channel": True}),
            ("quantize", {"mode": "static"}),
        ],
        "encoder": [
            ("onnx", {}),
            ("quantize", {"mode": "dynamic", "per_channel": False}),
            ("quantize", {"mode": "dynamic", "per_channel": True}),
            ("quantize", {"mode": "dynamic", "per_channel": True, "exclude_sensitive": True}),
            ("prune", {"kind": "unstructured", "amount": 0.5}),
            ("prune", {"kind": "structured", "amount": 0.25}),
            ("distill", {"layers": 3}),
        ],
        "onnx-encoder": [
            ("quantize", {"mode": "dynamic", "per_channel": True}),
        ],
    }
    plan = list(plans[kind])
    if kind == "encoder" and cpu is not None and cpu.has_bf16:
        plan.insert(1, ("quantize", {"mode": "bf16"}))
    return [spec_for(make_spec(m, p), kind) for m, p in plan]
