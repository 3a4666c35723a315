"""Kernels and data for the monitoring tests: the iris example's split, and a 4-feature linear model.

The iris split is the example's own (examples/build_examples.py ``iris_split``): the kernel's profile
was made from the 120 training rows, the 30 held-back rows never entered it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
IRIS = REPO / "examples" / "kernels" / "iris-classifier"


def iris_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    spec = importlib.util.spec_from_file_location("build_examples", REPO / "examples" / "build_examples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.iris_split()


def iris_copy(destination: Path, **monitoring: object) -> Path:
    """A copy of the iris kernel whose monitoring block has ``monitoring`` merged in."""
    shutil.copytree(IRIS, destination)
    path = destination / "model_metadata.json"
    metadata = json.loads(path.read_text())
    for key, value in monitoring.items():
        if isinstance(value, dict) and isinstance(metadata["monitoring"].get(key), dict):
            metadata["monitoring"][key].update(value)
        else:
            metadata["monitoring"][key] = value
    path.write_text(json.dumps(metadata, indent=2))
    return destination


def linear_kernel(root: Path, monitoring: dict, rows: int = 5000, seed: int = 0) -> Path:
    """A 4-feature linear regressor (ONNX MatMul) with a profile of ``rows`` standard-normal rows."""
    from shim.contract.profiling import build_profile
    from shim.contract.scaffold import write_golden_sample

    root.mkdir(parents=True)
    weights = np.array([[0.5], [-1.0], [0.25], [2.0]], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(root / "model.onnx"))
    metadata = {
        "contract_version": "1",
        "name": "linear-four",
        "version": "1.0.0",
        "framework": "onnx",
        "model_file": "model.onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4], "features": ["a", "b", "c", "d"]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
        "created_at": "2026-11-01T09:00:00Z",
        "created_by": "ds@example.com",
        "training_dataset": "s3://data/linear/v1/",
        "cost_center": "cc-1",
        "batching": {"max_batch_size": 256, "max_queue_delay_us": 0},
        "monitoring": {"profile": "profile.json", **monitoring},
    }
    (root / "model_metadata.json").write_text(json.dumps(metadata, indent=2))
    (root / "samples").mkdir()
    write_golden_sample(root, metadata)
    data = np.random.default_rng(seed).standard_normal((rows, 4)).astype(np.float32)
    np.save(root.parent / "x.npy", data)
    build_profile(root, [root.parent / "x.npy"])
    return root


def infer_body(name: str, rows: np.ndarray, request_id: str | None = None) -> dict:
    body: dict = {
        "inputs": [
            {
                "name": name,
                "datatype": "FP32",
                "shape": list(rows.shape),
                "data": rows.astype(np.float32).ravel().tolist(),
            }
        ]
    }
    if request_id is not None:
        body["id"] = request_id
    return body
