"""The public API of lockgate.optimize is a decision: this test pins it."""

from __future__ import annotations

import lockgate.optimize


def test_public_names_are_pinned() -> None:
    assert sorted(lockgate.optimize.__all__) == sorted(
        [
            "METHODS",
            "Candidate",
            "EncoderPythonModel",
            "Latency",
            "MeasureConfig",
            "MethodSpec",
            "OnnxSentenceEncoder",
            "OptimizationResult",
            "Optimizer",
            "TradeOff",
            "cosine_rows",
            "export_encoder",
            "generate_sentences",
            "make_spec",
            "max_abs_diff",
            "open_optimizer",
            "pareto_optimal",
            "plot_tradeoffs",
            "prune_encoder_ffn",
            "prune_mlp_neurons",
            "prune_unstructured",
            "quantize_dynamic_int8",
            "quantize_static_int8",
            "sensitive_nodes",
            "sklearn_to_onnx",
            "sparsity",
            "sweep_plan",
            "torch_to_onnx",
        ]
    )
    for name in lockgate.optimize.__all__:
        assert hasattr(lockgate.optimize, name)
