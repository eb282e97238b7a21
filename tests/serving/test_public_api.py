"""The public API of lockgate.serving is a decision: this test pins it."""

from __future__ import annotations

import lockgate.serving


def test_public_names_are_pinned() -> None:
    assert sorted(lockgate.serving.__all__) == sorted(
        [
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
    )
    for name in lockgate.serving.__all__:
        assert hasattr(lockgate.serving, name)
