"""Building v2 inference responses: JSON outputs, or Triton binary tensor data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from shim.protocol.codec import RequestedOutput, tensor_to_bytes, tensor_to_json_data
from shim.spec.kernel import TensorSpec

_NUMPY_JSON = orjson.OPT_SERIALIZE_NUMPY
_ORJSON_NATIVE = {"b", "i", "u", "f"}


def json_bytes(value: Any) -> bytes:
    return orjson.dumps(value, option=_NUMPY_JSON)


def _json_data(array: np.ndarray, spec: TensorSpec) -> Any:
    if array.dtype.kind in _ORJSON_NATIVE:
        flat = array.ravel()
        return flat if flat.flags.c_contiguous else np.ascontiguousarray(flat)
    return tensor_to_json_data(array, spec.datatype)


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    specs: Sequence[TensorSpec],
    outputs: Mapping[str, np.ndarray],
    requested: Sequence[RequestedOutput] | None,
    binary_default: bool,
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length."""
    if requested is None:
        selection = [(spec, binary_default) for spec in specs]
    else:
        by_name = {s.name: s for s in specs}
        selection = [(by_name[r.name], r.binary) for r in requested]
    entries = []
    chunks: list[bytes] = []
    for spec, binary in selection:
        array = outputs[spec.name]
        entry: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype.name,
                                 "shape": list(array.shape)}
        if binary:
            raw = tensor_to_bytes(array, spec.datatype)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = _json_data(array, spec)
        entries.append(entry)
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        body["id"] = request_id
    body["outputs"] = entries
    header = json_bytes(body)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})
