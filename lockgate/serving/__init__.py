"""The model server: Open Inference Protocol and MLflow scoring over HTTP, batched, verified.

Start one with ``lockgate serve MODEL_URI`` or, from Python, :func:`serve` (blocking) or
:func:`run_server_in_thread` (returns a handle with the URL). See ``docs/serving.md``.
"""

from __future__ import annotations

from lockgate.serving.app import DEFAULT_MAX_BODY_BYTES, Route, ServingApp, default_route
from lockgate.serving.batcher import Batcher, BatchPolicy
from lockgate.serving.predictor import FunctionPredictor, Predictor
from lockgate.serving.protocol import InferenceRequest, ModelInput, Outputs
from lockgate.serving.runtimes import (
    OnnxPredictor,
    PyfuncPredictor,
    SentenceEncoderPredictor,
    SklearnPredictor,
    TorchPredictor,
    load_predictor,
)
from lockgate.serving.server import (
    ServeConfig,
    ServerHandle,
    build_app,
    load_variant,
    run_server_in_thread,
    serve,
)
from lockgate.serving.signature import FieldSpec, Signature, signature_from_mlflow
from lockgate.serving.source import DIGEST_TAG, ModelSource, resolve_source, verify_digest
from lockgate.serving.variant import ServingPolicy, Variant

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DIGEST_TAG",
    "BatchPolicy",
    "Batcher",
    "FieldSpec",
    "FunctionPredictor",
    "InferenceRequest",
    "ModelInput",
    "ModelSource",
    "OnnxPredictor",
    "Outputs",
    "Predictor",
    "PyfuncPredictor",
    "Route",
    "SentenceEncoderPredictor",
    "ServeConfig",
    "ServerHandle",
    "ServingApp",
    "ServingPolicy",
    "Signature",
    "SklearnPredictor",
    "TorchPredictor",
    "Variant",
    "build_app",
    "default_route",
    "load_predictor",
    "load_variant",
    "resolve_source",
    "run_server_in_thread",
    "serve",
    "signature_from_mlflow",
    "verify_digest",
]
