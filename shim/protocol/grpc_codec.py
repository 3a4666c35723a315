"""The gRPC codec: ``ModelInferRequest`` to the same ``DecodedRequest`` the JSON codec produces.

One set of contract checks for both transports: a protobuf request is restated as the v2 JSON
document it is equivalent to (typed ``contents`` become ``data``; ``raw_input_contents`` become
the binary extension's ``binary_data_size`` parameters over one concatenated buffer) and goes
through ``shim.protocol.codec.decode_request``. So names, datatypes, shapes, element counts,
batch limits and non-finite values are checked by exactly the code the REST path uses, and both
transports reject the same requests with the same messages.

Responses carry every output in ``raw_output_contents`` (as Triton does), which both
``tritonclient.grpc`` and KServe's client read.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shim.protocol.codec import DecodedRequest, Limits, ProtocolError, decode_request, tensor_to_bytes
from shim.spec.kernel import TensorSpec

#: The ``InferTensorContents`` field that carries each datatype's typed values.
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
    "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
_ALL_FIELDS = tuple(sorted(set(CONTENTS_FIELD.values())))


def _parameter(value: Any) -> Any:
    kind = value.WhichOneof("parameter_choice")
    return getattr(value, kind) if kind else None


def _contents(tensor: Any) -> list[Any] | None:
    """The typed values of one input, from whichever contents field is set."""
    if not tensor.HasField("contents"):  # raw_input_contents: one C call instead of twelve lookups
        return None
    present = [name for name in _ALL_FIELDS if len(getattr(tensor.contents, name))]
    if not present:
        return None
    expected = CONTENTS_FIELD.get(tensor.datatype)
    if len(present) > 1 or present[0] != expected:
        raise ProtocolError(
            f"input {tensor.name!r}: datatype {tensor.datatype} carries its values in contents."
            f"{expected or '(raw_input_contents only)'}, but the request sets {', '.join(present)}"
        )
    return list(getattr(tensor.contents, present[0]))


def request_document(request: Any) -> tuple[dict[str, Any], memoryview | None]:
    """The v2 JSON document (and binary tail) equivalent to a ``ModelInferRequest``."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
                            "send one raw buffer per input, in input order, or typed contents only")
    inputs = []
    tail_parts: list[bytes] = []
    for index, tensor in enumerate(request.inputs):
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype,
                                 "shape": list(tensor.shape)}
        parameters = ({key: _parameter(value) for key, value in tensor.parameters.items()}
                      if tensor.parameters else {})
        values = _contents(tensor)
        part = None
        if raw:
            if values is not None:
                raise ProtocolError(f"input {tensor.name!r} has both typed contents and raw_input_contents")
            part = raw[index]
        elif tensor.datatype == "BYTES" and values is not None:
            # bytes_contents are bytes, not text: carry them as the binary extension lays BYTES out
            part = b"".join(struct.pack("<I", len(value)) + value for value in values)
        else:
            entry["data"] = values if values is not None else []
        if part is not None:
            parameters["binary_data_size"] = len(part)
            tail_parts.append(part)
        if parameters:
            entry["parameters"] = parameters
        inputs.append(entry)
    document: dict[str, Any] = {"inputs": inputs}
    if request.id:
        document["id"] = request.id
    if request.outputs:
        document["outputs"] = [{"name": output.name} for output in request.outputs]
    if request.parameters:
        document["parameters"] = {key: _parameter(value) for key, value in request.parameters.items()}
    if not tail_parts:
        return document, None
    # one input (the common case): the arrays are numpy views of the message's own bytes, no copy
    return document, memoryview(tail_parts[0] if len(tail_parts) == 1 else b"".join(tail_parts))


def decode_grpc_request(request: Any, specs: Mapping[str, TensorSpec], output_names: Sequence[str],
                        limits: Limits) -> tuple[DecodedRequest, dict[str, Any]]:
    """Validate and decode a ``ModelInferRequest`` against the contract; also the JSON-equivalent
    document, for the audit log."""
    document, tail = request_document(request)
    return decode_request(document, specs, output_names, tail, limits), document


def encode_grpc_response(response: Any, model: str, version: str, request_id: str | None,
                         specs: Sequence[TensorSpec], outputs: Mapping[str, np.ndarray],
                         requested: Sequence[str] | None) -> Any:
    """Fill ``response`` (a ``ModelInferResponse``) with the outputs, raw, in contract order."""
    response.model_name = model
    response.model_version = version
    if request_id:
        response.id = request_id
    wanted = set(requested) if requested else None
    for spec in specs:
        if wanted is not None and spec.name not in wanted:
            continue
        array = outputs[spec.name]
        response.outputs.add(name=spec.name, datatype=spec.datatype.name, shape=array.shape)
        response.raw_output_contents.append(tensor_to_bytes(array, spec.datatype))
    return response
