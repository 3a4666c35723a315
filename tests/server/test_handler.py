"""A kernel's pre/post-processing handler runs around the model wherever the model runs:
the golden samples of `shim validate`, `shim init`-style sample generation, and `shim serve`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from shim.contract.scaffold import write_golden_sample
from shim.contract.validator import validate_kernel
from tests.server.conftest import KERNELS, SHIM

# Clients send millimetres; the model was trained on centimetres. Implausible lengths are refused.
MM_TO_CM = '''
import numpy as np


def preprocess(inputs):
    x = inputs["X"]
    if (x > 10_000).any():
        raise ValueError("lengths over 10 m are not iris measurements")
    return {"X": (x / np.float32(10)).astype(np.float32)}


def postprocess(outputs):
    return {"label": outputs["label"], "probabilities": np.round(outputs["probabilities"], 4)}
'''
REQUEST_MM = [[51.0, 35.0, 14.0, 2.0], [67.0, 30.0, 52.0, 23.0]]


def make_handler_kernel(root: Path, source: str = MM_TO_CM) -> Path:
    kernel = root / "iris-mm"
    shutil.copytree(KERNELS / "iris-classifier", kernel)
    (kernel / "handler.py").write_text(source)
    metadata = json.loads((kernel / "model_metadata.json").read_text())
    metadata["name"] = "iris-mm"
    metadata.pop("monitoring", None)  # the iris profile is of another model (and of centimetres)
    (kernel / "profile.json").unlink()
    metadata["preprocessing"] = {"description": "millimetres to centimetres", "handler": "handler.py"}
    (kernel / "model_metadata.json").write_text(json.dumps(metadata, indent=2))
    write_golden_sample(kernel, metadata)  # expected outputs as served: through the handler
    return kernel


def model_in_cm(kernel: Path, x_mm: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(kernel / "model.onnx"), providers=["CPUExecutionProvider"])
    label, probabilities = session.run(["label", "probabilities"], {"X": x_mm / np.float32(10)})
    return {"label": label, "probabilities": np.round(probabilities, 4)}


def test_validate_runs_the_golden_samples_through_the_handler(tmp_path):
    kernel = make_handler_kernel(tmp_path)
    report = validate_kernel(kernel)
    assert report.ok, [f.render() for f in report.findings]
    assert report.samples_run == 1

    # the same samples without the handler disagree: the handler is what made them pass
    metadata = json.loads((kernel / "model_metadata.json").read_text())
    del metadata["preprocessing"]
    (kernel / "model_metadata.json").write_text(json.dumps(metadata))
    (kernel / "handler.py").unlink()  # a handler the contract does not name is refused (KS402)
    assert "KS305" in {f.code for f in validate_kernel(kernel).findings}  # output differs


@pytest.mark.parametrize("source, message", [
    ("import not_a_module_anywhere\ndef preprocess(inputs):\n    return inputs\n",
     "importing the handler failed: ModuleNotFoundError"),
    ("import numpy as np\ndef preprocess(inputs):\n    return {'X': inputs['X'].astype(np.float64)}\n",
     "'X' has dtype float64; the contract declares FP32"),
    ("def postprocess(outputs):\n    return {'label': outputs['label']}\n",
     "returned tensors ['label']; the contract declares ['label', 'probabilities']"),
])
def test_broken_handlers_are_findings_not_tracebacks(tmp_path, source, message):
    kernel = make_handler_kernel(tmp_path)
    (kernel / "handler.py").write_text(source)
    result = subprocess.run([*SHIM, "validate", str(kernel)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert message in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_serve_applies_the_handler_and_survives_its_errors(tmp_path, server_factory):
    kernel = make_handler_kernel(tmp_path)
    server = server_factory(kernel)
    url = f"{server.url}/v2/models/iris-mm/infer"
    x = np.array(REQUEST_MM, dtype=np.float32)
    request = {"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}

    answer = httpx.post(url, json=request, timeout=30)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: np.array(o["data"]) for o in answer.json()["outputs"]}
    expected = model_in_cm(kernel, x)
    np.testing.assert_array_equal(outputs["label"], expected["label"])
    np.testing.assert_allclose(outputs["probabilities"].reshape(2, 3), expected["probabilities"], atol=1e-6)
    assert list(expected["label"]) == [0, 2]  # millimetres read as centimetres would not give this

    huge = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [2e4, 1.0, 1.0, 1.0]}]}
    failed = httpx.post(url, json=huge, timeout=30)
    assert failed.status_code == 500
    assert "handler.py: preprocess raised ValueError: lengths over 10 m" in failed.json()["error"]
    assert httpx.post(url, json=request, timeout=30).json()["outputs"] == answer.json()["outputs"]

    metadata = httpx.get(f"{server.url}/v2", timeout=5).json()
    assert "handler.py" in json.dumps(metadata)


def test_only_the_golden_samples_import_the_handler(tmp_path):
    """A handler that raises at import: the static checks (--skip-samples) never import it, so the
    kernel is valid; the golden-sample run does (in the sandbox, whose file system is read-only, so
    the import is observed by its failure rather than by a marker file)."""
    kernel = make_handler_kernel(tmp_path)
    (kernel / "handler.py").write_text("raise RuntimeError('imported at validation')\n" + MM_TO_CM)
    static = subprocess.run([*SHIM, "validate", "--skip-samples", str(kernel)],
                            capture_output=True, text=True, timeout=120)
    assert static.returncode == 0, static.stdout
    full = subprocess.run([*SHIM, "validate", str(kernel)], capture_output=True, text=True, timeout=120)
    assert full.returncode == 1, full.stdout
    assert "KS008" in full.stdout and "importing the handler failed: RuntimeError" in full.stdout, full.stdout
