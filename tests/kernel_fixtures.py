"""Builders for hostile or broken files the tests put into kernels: real pickles, real ONNX
models, zip archives. Nothing here is mocked; every file is what a real tool would write."""

from __future__ import annotations

import datetime
import os
import pickle
import zipfile
from pathlib import Path

import onnx
import yaml
from onnx import TensorProto, helper

from shim.resources import policy_path


class CallsOsSystem:
    """Unpickling this runs ``os.system(command)`` (the classic malicious pickle). Never loaded here."""

    def __init__(self, command: str = "echo pwned") -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def malicious_pickle(protocol: int = 4) -> bytes:
    data = pickle.dumps(CallsOsSystem(), protocol=protocol)
    assert b"system" in data
    return data


def harmless_but_unlisted_pickle() -> bytes:
    """A pickle that imports datetime.date: not dangerous, but on no allow-list (not even TorchScript's)."""
    data = pickle.dumps(datetime.date(2026, 1, 31), protocol=4)
    assert b"datetime" in data
    return data


def truncated_pickle() -> bytes:
    return malicious_pickle()[:-9]


def add_zip_member(archive: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(archive, "a") as handle:
        handle.writestr(name, data)


def onnx_with_external_data(path: Path, location: str) -> None:
    """A valid Identity-plus-Add model whose weight claims to live in ``location``."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "w"], ["Y"])], "external",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [-1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [-1, 4])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())


def onnx_failing_checker(path: Path) -> None:
    """Parses as ONNX but fails onnx.checker: a node refers to an input nothing produces."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "nowhere"], ["Y"])], "broken",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [-1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [-1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())


def tiny_onnx(path: Path) -> None:
    """Y = relu(X) for X: FP32 [N, 3], plus a fixed-shape INT64 input ``ids`` [2]."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["X"], ["Y"]), helper.make_node("Identity", ["ids"], ["ids_out"])],
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("ids_out", TensorProto.INT64, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


def policy_override(directory: Path, **artifact_changes: object) -> Path:
    """A --policy-dir holding the shipped artifact policy with ``artifact_changes`` applied."""
    directory.mkdir(parents=True, exist_ok=True)
    policy = yaml.safe_load(policy_path("artifact_policy.yaml").read_text(encoding="utf-8"))
    policy.update(artifact_changes)
    (directory / "artifact_policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    return directory


def string_onnx(path: Path) -> None:
    """text: BYTES [N] -> the same strings (Identity): exercises BYTES tensors end to end."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["normalized"])],
        "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("normalized", TensorProto.STRING, ["N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())
