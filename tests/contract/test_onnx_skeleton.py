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


# -- checker_view: what onnx.checker sees without the weights ---------------------------------------

def _matmul(path: Path, rows: int, cols: int, x_cols: int | None = None, cut: int = 0, ir: int = 8) -> Path:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(rows * cols, dtype=np.float32).reshape(rows, cols), "w")
    if cut:
        weight.raw_data = weight.raw_data[:-cut]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, x_cols or rows])]
    if ir < 4:  # old exporters list initializers among the inputs too
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [rows, cols]))
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cols])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=ir)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("ir", [3, 8])
def test_checker_view_moves_large_weights_to_typed_inputs(tmp_path: Path, ir: int) -> None:
    from shim.onnx_skeleton import CHECKER_INLINE_BYTES, checker_view

    cols = CHECKER_INLINE_BYTES // 4096 + 1
    path = _matmul(tmp_path / "m.onnx", 1024, cols, ir=ir)
    view = checker_view(path)
    assert not view.graph.initializer
    (weight,) = [value for value in view.graph.input if value.name == "w"]
    assert [d.dim_value for d in weight.type.tensor_type.shape.dim] == [1024, cols]
    onnx.checker.check_model(view, full_check=True)
    assert view.ByteSize() < 1024


def test_checker_view_keeps_small_weights_whole(tmp_path: Path) -> None:
    from shim.onnx_skeleton import checker_view

    path = _matmul(tmp_path / "m.onnx", 4, 3)
    assert checker_view(path).SerializeToString() == onnx.load(str(path)).SerializeToString()


def test_checker_view_proves_the_byte_count_the_checker_would(tmp_path: Path) -> None:
    """A large weight missing 4 bytes: the checker refuses it when given the whole model, and the
    view refuses it too, naming the tensor, though it never parses the weight."""
    from shim.onnx_skeleton import checker_view

    path = _matmul(tmp_path / "m.onnx", 1024, 512, cut=4)
    with pytest.raises(Exception, match="raw_data"):
        onnx.checker.check_model(str(path), full_check=True)
    with pytest.raises(ValueError, match="'w' holds 2,097,148 bytes"):
        checker_view(path)


def test_checker_view_still_fails_shape_inference(tmp_path: Path) -> None:
    """x (1x1000) @ w (1024x512) is refused from the view as from the whole model."""
    from shim.onnx_skeleton import checker_view

    path = _matmul(tmp_path / "m.onnx", 1024, 512, x_cols=1000)
    for model in (str(path), checker_view(path)):
        with pytest.raises((onnx.checker.ValidationError, onnx.shape_inference.InferenceError),
                           match="Incompatible dimensions"):
            onnx.checker.check_model(model, full_check=True)
