"""Model optimization: ONNX export, int8 quantization, pruning and distillation, each with its measured
trade-off, logged to MLflow and registered with lineage. See ``docs/optimization.md``."""

from __future__ import annotations

from lockgate.optimize.encoder import EncoderPythonModel, OnnxSentenceEncoder, export_encoder
from lockgate.optimize.export import sklearn_to_onnx, torch_to_onnx
from lockgate.optimize.measure import MeasureConfig
from lockgate.optimize.methods import METHODS, MethodSpec, make_spec, sweep_plan
from lockgate.optimize.optimizer import Candidate, OptimizationResult, Optimizer, open_optimizer
from lockgate.optimize.plot import plot_tradeoffs
from lockgate.optimize.prune import prune_encoder_ffn, prune_mlp_neurons, prune_unstructured, sparsity
from lockgate.optimize.quantize import quantize_dynamic_int8, quantize_static_int8, sensitive_nodes
from lockgate.optimize.sentences import generate_sentences
from lockgate.optimize.tradeoff import Latency, TradeOff, cosine_rows, max_abs_diff, pareto_optimal

__all__ = [
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
