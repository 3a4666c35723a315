"""The memory budget: the validator runs one batch of max_batch_size in its sandboxed child,
reports the peak (JSON ``memory``), and a contract whose resources.memory is below the peak times
the policy's headroom gets KS841 naming the measured figure."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import EXAMPLE_KERNELS, edit_json, write_json
from kernel_fixtures import policy_override
from onnx import TensorProto, helper

from shim.contract.memory_budget import repeat_rows
from shim.contract.validator import validate_kernel
from shim.policy.loader import load_policies
from shim.spec.quantity import memory_bytes

ROW_MIB = 4  # each row of the model below makes a 4 MiB intermediate tensor


def batch_hungry_kernel(directory: Path, max_batch_size: int, memory: str) -> Path:
    """X [N, 1024] FP32 -> Tile x1024 (N x 4 MiB) -> ReduceSum -> Y [N, 1]: memory grows with N."""
    graph = helper.make_graph(
        [helper.make_node("Tile", ["X", "repeats"], ["wide"]),
         helper.make_node("ReduceSum", ["wide", "axes"], ["Y"], keepdims=1)],
        "hungry",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 1024])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor("repeats", TensorProto.INT64, [2], [1, ROW_MIB * 256]),
         helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    directory.mkdir()
    onnx.save(model, directory / "model.onnx")
    metadata = json.loads((EXAMPLE_KERNELS / "iris-classifier" / "model_metadata.json").read_text())
    metadata.pop("monitoring", None)  # the iris example's profile is of another model
    metadata.update(name="hungry", inputs=[{"name": "X", "datatype": "FP32", "shape": [-1, 1024]}],
                    outputs=[{"name": "Y", "datatype": "FP32", "shape": [-1, 1]}],
                    batching={"max_batch_size": max_batch_size}, resources={"memory": memory})
    write_json(directory / "model_metadata.json", metadata)
    x = np.linspace(-1, 1, 1024, dtype=np.float32).reshape(1, 1024)
    (directory / "samples").mkdir()
    write_json(directory / "samples" / "example.json", {
        "request": {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 1024],
                                "data": x.ravel().tolist()}]},
        "expected": {"outputs": [{"name": "Y", "datatype": "FP32", "shape": [1, 1],
                                  "data": [float(x.sum(dtype=np.float64) * ROW_MIB * 256)]}]},
        "tolerance": {"atol": 1e-2, "rtol": 1e-4},
    })
    return directory


def test_peak_grows_with_max_batch_size(tmp_path: Path) -> None:
    """The measured figure really is the max_batch_size run: 128 rows of 4 MiB cost ~512 MiB more
    (at least half of that is asserted: a machine short of memory may page some of it out)."""
    small = validate_kernel(batch_hungry_kernel(tmp_path / "one", 1, "8Gi"))
    large = validate_kernel(batch_hungry_kernel(tmp_path / "many", 128, "8Gi"))
    assert small.ok and large.ok, [f.render() for f in small.findings + large.findings]
    assert (small.memory_peak.batch_size, large.memory_peak.batch_size) == (1, 128)
    grown = large.memory_peak.rss_bytes - small.memory_peak.rss_bytes
    assert grown > 0.5 * 128 * ROW_MIB * 2**20, (small.memory_peak, large.memory_peak)
    assert small.memory_peak.device_bytes is None  # CPU: no device memory


def test_the_parents_memory_does_not_count(kernel_copy) -> None:
    """The child's own peak: a validating process holding 600 MiB (a test run that imported torch,
    a hook validating many kernels) does not inflate it (Linux carries ru_maxrss over a spawn)."""
    ballast = np.ones(600 * 2**20 // 8)  # touched: resident
    report = validate_kernel(kernel_copy("iris-classifier"))
    assert report.ok and report.memory_peak.rss_bytes < 400 * 2**20, report.memory_peak
    del ballast


def test_declared_memory_below_peak_names_the_figure(run_shim, tmp_path: Path) -> None:
    kernel = batch_hungry_kernel(tmp_path / "k", 256, "64Mi")
    result = run_shim("validate", "--format", "json", kernel)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    memory = report["kernels"][0]["memory"]
    assert set(memory) == {"peak_rss_bytes", "device_peak_bytes", "batch_size"}
    assert memory["batch_size"] == 256 and memory["device_peak_bytes"] is None
    (finding,) = report["findings"]
    assert finding["code"] == "KS841" and finding["path"] == "$.resources.memory"
    measured = f"{-(-memory['peak_rss_bytes'] // 2**20)}Mi"
    assert measured in finding["fix"] and "64Mi" in finding["message"]
    needed = re.search(r"set resources.memory to (\d+Mi)", finding["fix"]).group(1)
    assert memory_bytes(needed) >= 1.25 * memory["peak_rss_bytes"]

    edit_json(kernel / "model_metadata.json", lambda m: m["resources"].update(memory=needed))
    fixed = run_shim("validate", kernel)
    assert fixed.returncode == 0, fixed.output
    assert "peak memory" in fixed.stdout and "at batch 256" in fixed.stdout


def test_policy_headroom_is_applied(kernel_copy, tmp_path: Path) -> None:
    kernel = kernel_copy("iris-classifier")
    clean = validate_kernel(kernel)
    assert clean.ok and clean.memory_peak is not None
    declared = memory_bytes("512Mi")
    factor = 2 * declared / clean.memory_peak.rss_bytes  # twice what makes 512Mi just enough
    strict_policy = load_policies(policy_override(tmp_path / "policy", memory_headroom=round(factor, 2)))
    codes = [f.code for f in validate_kernel(kernel, policies=strict_policy).findings]
    assert codes == ["KS841"]


def test_no_batching_measures_the_samples_batch(kernel_copy) -> None:
    kernel = kernel_copy("iris-classifier")
    edit_json(kernel / "model_metadata.json", lambda m: m.pop("batching"))
    report = validate_kernel(kernel)
    assert report.ok and report.memory_peak.batch_size == 2


def test_skip_samples_measures_nothing(kernel_copy) -> None:
    report = validate_kernel(kernel_copy("iris-classifier"), run_golden_samples=False)
    assert report.ok and report.memory_peak is None


@pytest.mark.parametrize("rows, size", [(1, 5), (3, 7), (4, 2)])
def test_repeat_rows(rows: int, size: int) -> None:
    array = np.arange(rows * 2).reshape(rows, 2)
    grown = repeat_rows({"x": array}, size)["x"]
    assert grown.shape == (size, 2)
    assert all((grown[i] == array[i % rows]).all() for i in range(size))


def test_quantities() -> None:
    assert memory_bytes("512Mi") == 512 * 2**20 and memory_bytes("1.5Gi") == 3 * 2**29
    assert memory_bytes("2G") == 2 * 10**9 and memory_bytes("1024") == 1024
    with pytest.raises(ValueError):
        memory_bytes("1 GiB")


