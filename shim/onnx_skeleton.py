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


def load_skeleton(source: Path | str | BinaryIO) -> onnx.ModelProto:
    """The model at ``source`` (a path, or a file the caller opened, e.g. without following links)
    with every initializer's values left out (see the module docstring)."""
    with contextlib.ExitStack() as stack:
        stream = source if hasattr(source, "fileno") else stack.enter_context(open(source, "rb"))
        size = stream.seek(0, 2)
        if size == 0:
            raise ValueError("empty file")
        with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:

            def tensor_field(number: int, _wire: int, _payload: int, _end: int) -> bool | None:
                return False if number in _TENSOR_VALUE_FIELDS else None

            def graph_field(number: int, wire: int, payload: int, end: int) -> bytes | None:
                if number == _INITIALIZER_IN_GRAPH and wire == 2:
                    return _length_delimited(number, _strip(data, payload, end, tensor_field))
                return None

            def model_field(number: int, wire: int, payload: int, end: int) -> bytes | None:
                if number == _GRAPH_IN_MODEL and wire == 2:
                    return _length_delimited(number, _strip(data, payload, end, graph_field))
                return None

            skeleton = _strip(data, 0, size, model_field)
    model = onnx.ModelProto()
    model.ParseFromString(skeleton)
    return model
