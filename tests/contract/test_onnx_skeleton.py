"""``shim.onnx_skeleton``: the model without tensor values, read without reading them; equal to
``onnx.load`` minus the values, and strict about malformed files."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from conftest import EXAMPLE_KERNELS
from google.protobuf.message import DecodeError
from kernel_fixtures import onnx_with_external_data, string_onnx, tiny_onnx

from shim.onnx_skeleton import load_skeleton

VALUE_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "raw_data", "double_data",
                "uint64_data")


def _without_values(model: onnx.ModelProto) -> onnx.ModelProto:
    for tensor in model.graph.initializer:
        for name in VALUE_FIELDS:
            tensor.ClearField(name)
    return model


def _models(tmp_path: Path) -> list[Path]:
    paths = [EXAMPLE_KERNELS / name / "model.onnx" for name in ("iris-classifier", "two-input-ranker")]
    for name, build in (("tiny.onnx", tiny_onnx), ("strings.onnx", string_onnx)):
        build(tmp_path / name)
        paths.append(tmp_path / name)
    external = tmp_path / "external" / "model.onnx"
    external.parent.mkdir()
    onnx_with_external_data(external, "weights.data")
    paths.append(external)
    return paths


def test_equals_the_full_model_without_values(tmp_path: Path) -> None:
    for path in _models(tmp_path):
        skeleton = load_skeleton(path)
        full = _without_values(onnx.load(str(path), load_external_data=False))
        assert skeleton.SerializeToString() == full.SerializeToString(), path
        assert [t.name for t in skeleton.graph.initializer] == [t.name for t in full.graph.initializer]


def test_values_are_not_kept(tmp_path: Path) -> None:
    path = EXAMPLE_KERNELS / "two-input-ranker" / "model.onnx"
    skeleton = load_skeleton(path)
    assert skeleton.ByteSize() < path.stat().st_size
    assert all(not t.raw_data and not t.float_data for t in skeleton.graph.initializer)


@pytest.mark.parametrize("data", [
    b"\x08",  # a varint key and nothing after it
    b"\x3a\xff\xff\xff\xff\x0f",  # graph field claiming 4 GiB
    b"\x3a\x05\x2a\x10abc",  # an initializer running past its graph
    b"\x0b\x0c",  # group wire types
    b"\xff" * 20,  # an overlong varint
    b"",
])
def test_malformed_files_are_errors(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    with pytest.raises((ValueError, DecodeError)):
        load_skeleton(path)
