"""Decode v2 request tensors into numpy arrays and encode outputs, JSON or binary.

The codec is the contract's enforcement point on the request path: every way a request can
disagree with the declared tensors becomes a ``ProtocolError`` (HTTP 400) naming the tensor and
the problem. The validator runs golden samples through this same code, so a sample that passes
``shim validate`` is decoded exactly as the server will decode it.

Binary tensors follow Triton's binary tensor data extension: the JSON header is followed by the
raw little-endian bytes of each input that carries ``parameters.binary_data_size``, in input order;
BYTES elements are each prefixed by a 4-byte little-endian length.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shim.spec.datatypes import DATATYPES, DataType
from shim.spec.kernel import TensorSpec


class ProtocolError(ValueError):
    """A request that breaks the protocol or the contract; answered with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """Bounds applied while decoding, before any large allocation happens."""

    max_elements_per_tensor: int = 64 * 1024 * 1024
    max_batch_size: int = 0  # 0: only the contract's shape limits apply


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass
class DecodedRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[RequestedOutput] | None
    binary_outputs_default: bool
    parameters: dict[str, Any]

    @property
    def batch_size(self) -> int:
        first = next(iter(self.inputs.values()))
        return int(first.shape[0]) if first.ndim else 1


def _little_endian(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype


def _check_shape(spec: TensorSpec, shape: Any, limits: Limits) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ProtocolError(
            f"input {spec.name!r}: 'shape' must be a list of non-negative integers, got {shape!r}"
        )
    if len(shape) != len(spec.shape):
        raise ProtocolError(
            f"input {spec.name!r}: shape {shape} has {len(shape)} dimensions; the contract declares "
            f"{list(spec.shape)} ({len(spec.shape)} dimensions)"
        )
    for axis, (got, declared) in enumerate(zip(shape, spec.shape, strict=True)):
        if declared != -1 and got != declared:
            raise ProtocolError(
                f"input {spec.name!r}: dimension {axis} is {got}; the contract declares {declared} "
                f"(shape {list(spec.shape)}, -1 = any)"
            )
    if limits.max_batch_size and shape and shape[0] > limits.max_batch_size:
        raise ProtocolError(
            f"input {spec.name!r}: batch dimension {shape[0]} exceeds the model's max_batch_size "
            f"{limits.max_batch_size}"
        )
    count = math.prod(shape)
    if count > limits.max_elements_per_tensor:
        raise ProtocolError(
            f"input {spec.name!r}: {count} elements exceed the server's limit of "
            f"{limits.max_elements_per_tensor} per tensor",
            status=413,
        )
    return tuple(shape)


def _flatten_strings(data: Any, name: str) -> list[bytes]:
    out: list[bytes] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str):
            out.append(item.encode("utf-8"))
        else:
            raise ProtocolError(
                f"input {name!r}: datatype BYTES needs strings in 'data', found {type(item).__name__} "
                f"{str(item)[:40]!r}"
            )
    return out


_NUMBERS_ONLY = object()  # sentinel: every item is a number


def _numbers_from_json(data: Any, spec: TensorSpec, datatype: DataType) -> np.ndarray:
    name = spec.name
    try:
        array = np.asarray(data)
    except (ValueError, TypeError):
        raise ProtocolError(
            f"input {name!r}: 'data' is a ragged nested list; give a flat row-major list or a "
            "nested list matching 'shape'"
        ) from None
    kind = array.dtype.kind
    if array.size == 0:
        return np.zeros(0, dtype=datatype.numpy)
    if datatype.is_integer and kind in "fO":
        # numpy infers float64 for ints beyond int64 mixed with others ([2**64 - 1, 1]) and object
        # for ints beyond uint64: rebuild from the exact Python ints before judging the values
        exact = np.array(data, dtype=object)
        if all(type(item) is int for item in exact.flat):
            array, kind = exact, "i"
    if kind in "USO":
        # judge the values as the client sent them (numpy turned [1, "a"] into strings)
        items = np.array(data, dtype=object).flat
        sample = next((x for x in items if not isinstance(x, (int, float, bool))), _NUMBERS_ONLY)
        if sample is _NUMBERS_ONLY:
            raise ProtocolError(
                f"input {name!r}: 'data' mixes numbers beyond 64-bit range with others; every value "
                f"must fit {datatype.name}"
            )
        raise ProtocolError(
            f"input {name!r}: datatype {datatype.name} needs numbers in 'data', found "
            f"{type(sample).__name__} {str(sample)[:40]!r}"
        )
    if datatype.name == "BOOL":
        if kind != "b":
            raise ProtocolError(f"input {name!r}: datatype BOOL needs true/false values in 'data'")
        return array.astype(np.bool_, copy=False)
    if kind == "b":
        raise ProtocolError(
            f"input {name!r}: datatype {datatype.name} needs numbers in 'data', found true/false"
        )
    if datatype.is_integer:
        if kind == "f":
            sample = next((x for x in np.array(data, dtype=object).flat if isinstance(x, float)), None)
            raise ProtocolError(
                f"input {name!r}: datatype {datatype.name} needs integers in 'data', found "
                f"fractional numbers like {sample!r}"
            )
        info = np.iinfo(datatype.numpy)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            raise ProtocolError(
                f"input {name!r}: value {low if low < info.min else high} is outside the "
                f"{datatype.name} range [{info.min}, {info.max}]"
            )
    return array.astype(datatype.numpy, copy=False)


def _bytes_from_binary(buffer: memoryview, name: str) -> np.ndarray:
    items: list[bytes] = []
    offset, end = 0, len(buffer)
    while offset < end:
        if offset + 4 > end:
            raise ProtocolError(f"input {name!r}: binary BYTES data ends inside a length prefix")
        (length,) = struct.unpack_from("<I", buffer, offset)
        offset += 4
        if offset + length > end:
            raise ProtocolError(f"input {name!r}: binary BYTES element of {length} bytes runs past the data")
        items.append(bytes(buffer[offset : offset + length]))
        offset += length
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def decode_tensor(
    entry: Any,
    spec: TensorSpec,
    binary: memoryview | None,
    limits: Limits,
) -> np.ndarray:
    """Turn one v2 request input into an array of the contract's dtype and the request's shape."""
    datatype_name = entry.get("datatype")
    if datatype_name != spec.datatype.name:
        is_v2 = isinstance(datatype_name, str) and datatype_name in DATATYPES
        known = "" if is_v2 else " (not a v2 datatype)"
        raise ProtocolError(
            f"input {spec.name!r}: datatype {datatype_name!r}{known} does not match the contract's "
            f"{spec.datatype.name}"
        )
    datatype = spec.datatype
    shape = _check_shape(spec, entry.get("shape"), limits)
    count = math.prod(shape)
    if binary is not None:
        if datatype.is_bytes:
            array = _bytes_from_binary(binary, spec.name)
        else:
            expected = count * datatype.itemsize
            if len(binary) != expected:
                raise ProtocolError(
                    f"input {spec.name!r}: binary_data_size is {len(binary)} bytes but shape {list(shape)} "
                    f"of {datatype.name} needs {expected}"
                )
            array = np.frombuffer(binary, dtype=_little_endian(datatype.numpy))
            if datatype.name == "BOOL" and array.size and array.view(np.uint8).max() > 1:
                raise ProtocolError(f"input {spec.name!r}: BOOL bytes must be 0 or 1")
    else:
        if "data" not in entry:
            raise ProtocolError(
                f"input {spec.name!r}: no 'data' and no parameters.binary_data_size; one is required"
            )
        data = entry["data"]
        if not isinstance(data, list):
            raise ProtocolError(f"input {spec.name!r}: 'data' must be a list, got {type(data).__name__}")
        if datatype.is_bytes:
            flat = _flatten_strings(data, spec.name)
            array = np.empty(len(flat), dtype=object)
            array[:] = flat
        else:
            array = _numbers_from_json(data, spec, datatype)
    if array.size != count:
        raise ProtocolError(
            f"input {spec.name!r}: 'data' has {array.size} elements but shape {list(shape)} needs {count}"
        )
    array = array.reshape(shape)
    if datatype.is_float and not spec.allow_non_finite and not np.isfinite(array).all():
        raise ProtocolError(
            f"input {spec.name!r}: contains NaN or infinite values (or values outside the "
            f"{datatype.name} range); the contract does not allow non-finite values for this input"
        )
    return array


def _binary_sizes(raw_inputs: Sequence[Any]) -> list[int | None]:
    sizes: list[int | None] = []
    for entry in raw_inputs:
        params = entry.get("parameters") if isinstance(entry, dict) else None
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None and (type(size) is not int or size < 0):
            raise ProtocolError(
                f"input {entry.get('name')!r}: binary_data_size must be a non-negative integer"
            )
        sizes.append(size)
    return sizes


def decode_request(
    body: Any,
    specs: Mapping[str, TensorSpec],
    output_names: Sequence[str],
    binary_tail: memoryview | None = None,
    limits: Limits = Limits(),
) -> DecodedRequest:
    """Validate and decode a whole v2 inference request against the contract."""
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object with an 'inputs' list")
    raw_inputs = body.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("the request needs a non-empty 'inputs' list")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError("'parameters' must be an object")
    for entry in raw_inputs:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ProtocolError("each input must be an object with a string 'name', 'shape' and 'datatype'")

    sizes = _binary_sizes(raw_inputs)
    tail_length = len(binary_tail) if binary_tail is not None else 0
    needed = sum(s for s in sizes if s)
    if needed != tail_length:
        raise ProtocolError(
            f"binary_data_size values add up to {needed} bytes but the body carries {tail_length} "
            "bytes after the JSON header (Inference-Header-Content-Length)"
        )

    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for entry, size in zip(raw_inputs, sizes, strict=True):
        name = entry["name"]
        spec = specs.get(name)
        if spec is None:
            raise ProtocolError(
                f"unknown input {name!r}; the model's inputs are: {', '.join(specs)}"
            )
        if name in inputs:
            raise ProtocolError(f"input {name!r} is given twice")
        chunk = None
        if size is not None:
            assert binary_tail is not None or size == 0
            chunk = binary_tail[offset : offset + size] if binary_tail is not None else memoryview(b"")
            offset += size
        inputs[name] = decode_tensor(entry, spec, chunk, limits)

    missing = [name for name in specs if name not in inputs]
    if missing:
        raise ProtocolError(
            f"missing input(s) {', '.join(map(repr, missing))}; the model needs all of: {', '.join(specs)}"
        )
    if len(inputs) > 1:
        batch_sizes = {a.shape[0] for a in inputs.values() if a.ndim}
        if limits.max_batch_size and len(batch_sizes) > 1:
            raise ProtocolError(f"inputs disagree on the batch dimension: {sorted(batch_sizes)}")

    binary_default = bool(parameters.get("binary_data_output", False))
    requested = _requested_outputs(body.get("outputs"), output_names, binary_default)
    return DecodedRequest(request_id, inputs, requested, binary_default, parameters)


def _requested_outputs(
    raw: Any, output_names: Sequence[str], binary_default: bool
) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ProtocolError("'outputs' must be a list of objects with a 'name'")
    requested = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ProtocolError("each requested output must be an object with a string 'name'")
        if entry["name"] not in output_names:
            raise ProtocolError(
                f"unknown output {entry['name']!r}; the model's outputs are: {', '.join(output_names)}"
            )
        params = entry.get("parameters") or {}
        if not isinstance(params, dict):
            raise ProtocolError(f"output {entry['name']!r}: 'parameters' must be an object")
        binary = params.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise ProtocolError(f"output {entry['name']!r}: parameters.binary_data must be true or false")
        requested.append(RequestedOutput(entry["name"], binary))
    return requested


def tensor_to_bytes(array: np.ndarray, datatype: DataType) -> bytes:
    """Raw little-endian bytes of a tensor as the binary extension lays them out."""
    if datatype.is_bytes:
        parts = []
        for item in array.ravel():
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=_little_endian(datatype.numpy)).tobytes()


def tensor_to_json_data(array: np.ndarray, datatype: DataType) -> list[Any]:
    """Flat row-major JSON values of a tensor."""
    if datatype.is_bytes:
        return [
            item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)
            for item in array.ravel()
        ]
    return array.ravel().tolist()
