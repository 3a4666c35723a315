"""An ONNX model without its tensor data: what the contract check needs, read in milliseconds.

Comparing the contract with the graph needs the graph's inputs, outputs, nodes and the names, types
and shapes of its initializers, never their values. ``onnx.load`` parses every byte of a 1 GiB
model into Python (seconds), and it was done once more than needed: the C++ checker reads the file
itself. So the model file is memory-mapped and its protobuf wire format walked: every field is
copied except the value fields of the graph's initializers (raw_data and the typed value lists),
which are skipped by their length prefixes without being read. The result parses as an ordinary
``onnx.ModelProto`` whose initializers have names, data types and dims but no data.

The artifact gate reads model files this way (their structure and external-data references), and
so does the contract check; the C++ checker and the runtime read every byte. The walk is strict
about what it reads: any field that runs past its message or has a deprecated group wire type
raises ``ValueError``, and protobuf parses the rest.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import onnx

_GRAPH_IN_MODEL = 7
_INITIALIZER_IN_GRAPH = 5
#: TensorProto fields that hold values: float_data, int32_data, string_data, int64_data, raw_data,
#: double_data, uint64_data. dims (1), data_type (2), name (8), external_data (13) and
#: data_location (14) stay.
_TENSOR_VALUE_FIELDS = {4, 5, 6, 7, 9, 10, 11}


def _varint(data: mmap.mmap | bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: mmap.mmap | bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """(field number, wire type, start of the field's bytes, start of its payload, end)."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _varint(data, pos, end)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, pos = _varint(data, pos, end)
            payload = pos
        elif wire_type == 1:
            payload, pos = pos, pos + 8
        elif wire_type == 5:
            payload, pos = pos, pos + 4
        elif wire_type == 2:
            length, payload = _varint(data, pos, end)
            pos = payload + length
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        if pos > end:
            raise ValueError("field runs past its message")
        yield number, wire_type, field_start, payload, pos


def _length_delimited(number: int, payload: bytes) -> bytes:
    key, length = (number << 3) | 2, len(payload)
    out = bytearray()
    for value in (key, length):
        while True:
            byte = value & 0x7F
            value >>= 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                break
    return bytes(out) + payload


def _strip(data: mmap.mmap | bytes, start: int, end: int,
           keep: Callable[[int, int, int, int], bytes | bool | None]) -> bytes:
    """The message at ``data[start:end]`` with each field as ``keep`` says: None copies it, False
    drops it, bytes replace it."""
    out = bytearray()
    for number, wire_type, field_start, payload, field_end in _fields(data, start, end):
        replacement = keep(number, wire_type, payload, field_end)
        if replacement is None:
            out += data[field_start:field_end]
        elif replacement is not False:
            out += replacement
    return bytes(out)


@contextlib.contextmanager
def _mapped(source: Path | str | BinaryIO) -> Iterator[tuple[mmap.mmap, int]]:
    with contextlib.ExitStack() as stack:
        stream = source if hasattr(source, "fileno") else stack.enter_context(open(source, "rb"))
        size = stream.seek(0, 2)
        if size == 0:
            raise ValueError("empty file")
        with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data, size


def _in_graph(data: mmap.mmap, size: int, initializer: Callable[[int, int], bytes | bool | None]) -> bytes:
    """The model's bytes with each top-level graph initializer (payload start, end) as
    ``initializer`` says (see ``_strip``)."""

    def graph_field(number: int, wire: int, payload: int, end: int) -> bytes | bool | None:
        if number == _INITIALIZER_IN_GRAPH and wire == 2:
            return initializer(payload, end)
        return None

    def model_field(number: int, wire: int, payload: int, end: int) -> bytes | None:
        if number == _GRAPH_IN_MODEL and wire == 2:
            return _length_delimited(number, _strip(data, payload, end, graph_field))
        return None

    return _strip(data, 0, size, model_field)


def load_skeleton(source: Path | str | BinaryIO) -> onnx.ModelProto:
    """The model at ``source`` (a path, or a file the caller opened, e.g. without following links)
    with every initializer's values left out (see the module docstring)."""
    with _mapped(source) as (data, size):

        def tensor_field(number: int, _wire: int, _payload: int, _end: int) -> bool | None:
            return False if number in _TENSOR_VALUE_FIELDS else None

        skeleton = _in_graph(
            data, size, lambda start, end: _length_delimited(
                _INITIALIZER_IN_GRAPH, _strip(data, start, end, tensor_field))
        )
    model = onnx.ModelProto()
    model.ParseFromString(skeleton)
    return model


#: An initializer whose raw_data is at least this large is kept out of the checker's view.
CHECKER_INLINE_BYTES = 1 << 20
_DIMS, _DATA_TYPE, _NAME, _RAW_DATA = 1, 2, 8, 9


def checker_view(source: Path | str | BinaryIO) -> onnx.ModelProto:
    """The model as ``onnx.checker`` (with shape inference) should see it, without copying the
    weights into protobuf: parsing a 1 GiB model in C++ only to check it took seconds.

    Small initializers stay whole (shape inference may read their values: a Reshape's shape).
    Each large one (raw_data of ``CHECKER_INLINE_BYTES`` or more) is proven here to hold exactly
    the bytes its data type and dims need (the check the checker would make), then appears as a
    graph input of that type and shape, so the checker and shape inference still know its name,
    type and shape. Raises ``ValueError`` naming the tensor when its byte count is wrong. Models
    with external data are checked from their path instead (the checker resolves the files).
    """
    moved: list[tuple[str, int, list[int]]] = []
    with _mapped(source) as (data, size):

        def initializer(start: int, end: int) -> bool | None:
            name, data_type, dims, raw = "", 0, [], -1
            for number, wire, field_start, payload, field_end in _fields(data, start, end):
                if number == _NAME and wire == 2:
                    name = bytes(data[payload:field_end]).decode("utf-8", "replace")
                elif number == _DATA_TYPE and wire == 0:
                    data_type = _scalar(data, field_start, field_end)
                elif number == _DIMS and wire == 0:
                    dims.append(_scalar(data, field_start, field_end))
                elif number == _DIMS and wire == 2:
                    pos = payload
                    while pos < field_end:
                        value, pos = _varint(data, pos, field_end)
                        dims.append(value)
                elif number == _RAW_DATA and wire == 2:
                    raw = field_end - payload
            if raw < CHECKER_INLINE_BYTES:
                return None
            dims = [d - (1 << 64) if d >= 1 << 63 else d for d in dims]  # int64 two's complement
            itemsize = _itemsize(data_type, name)
            if any(d < 0 for d in dims):
                raise ValueError(f"initializer {name!r} has a negative dimension {dims}")
            needed = itemsize
            for d in dims:
                needed *= d
            if raw != needed:
                raise ValueError(f"initializer {name!r} holds {raw:,} bytes of raw_data but its type and "
                                 f"shape {dims} need {needed:,}")
            moved.append((name, data_type, dims))
            return False

        view = _in_graph(data, size, initializer)
    model = onnx.ModelProto()
    model.ParseFromString(view)
    inputs = {value.name for value in model.graph.input}
    for name, data_type, dims in moved:
        if name not in inputs:  # IR < 4 lists initializers as inputs already, typed
            model.graph.input.append(onnx.helper.make_tensor_value_info(name, data_type, dims))
    return model


def _scalar(data: mmap.mmap, field_start: int, end: int) -> int:
    """The value of the varint field starting (with its key) at ``field_start``."""
    _key, pos = _varint(data, field_start, end)
    return _varint(data, pos, end)[0]


def _itemsize(data_type: int, name: str) -> int:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"initializer {name!r} has raw_data of an unknown data type {data_type}") from None
