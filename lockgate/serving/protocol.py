"""Request decoding and response encoding for the two inference protocols (pure functions).

``/invocations`` speaks MLflow's scoring format (:mod:`~lockgate.serving.invocations_codec`);
``/v2/models/{name}/infer`` speaks the Open Inference Protocol, KServe V2
(:mod:`~lockgate.serving.v2_codec`, with the binary tensor data extension in
:mod:`~lockgate.serving.binary_data`). Both decode into one :class:`InferenceRequest`
(:mod:`~lockgate.serving.payload`). This module gathers their public names in one place.
"""

from __future__ import annotations

from lockgate.serving.invocations_codec import INVOCATION_FORMATS, decode_invocations, encode_invocations
from lockgate.serving.payload import InferenceRequest, ModelInput, Outputs, parse_json
from lockgate.serving.v2_codec import decode_v2, encode_v2, encode_v2_binary, v2_datatype

__all__ = [
    "INVOCATION_FORMATS",
    "InferenceRequest",
    "ModelInput",
    "Outputs",
    "decode_invocations",
    "decode_v2",
    "encode_invocations",
    "encode_v2",
    "encode_v2_binary",
    "parse_json",
    "v2_datatype",
]
