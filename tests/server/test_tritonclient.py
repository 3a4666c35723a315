"""The real, unmodified tritonclient against ``shim serve`` on every example kernel.

Proves the server speaks the Open Inference Protocol as Triton's own client expects it: health,
readiness, model metadata, and inference with JSON and binary tensors (inputs and outputs in
every combination), each answer compared with the kernel's golden outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient

from shim.contract.kernel import read_kernel

from .conftest import KERNELS, golden

KERNEL_NAMES = ["iris-classifier", "torchscript-mlp", "two-input-ranker", "torch-export-digits"]


@pytest.fixture(scope="module", params=KERNEL_NAMES)
def served(request, server_factory):
    kernel_dir = KERNELS / request.param
    server = server_factory(kernel_dir)
    client = httpclient.InferenceServerClient(server.address, connection_timeout=10, network_timeout=30)
    yield kernel_dir, server, client
    client.close()


def _inputs(sample: dict, binary: bool) -> list[httpclient.InferInput]:
    kernel_inputs = []
    for entry in sample["request"]["inputs"]:
        infer_input = httpclient.InferInput(entry["name"], entry["shape"], entry["datatype"])
        dtype = {"FP32": np.float32, "INT64": np.int64}[entry["datatype"]]
        infer_input.set_data_from_numpy(
            np.array(entry["data"], dtype=dtype).reshape(entry["shape"]), binary_data=binary
        )
        kernel_inputs.append(infer_input)
    return kernel_inputs


def test_health_and_readiness(served):
    kernel_dir, _server, client = served
    kernel = read_kernel(kernel_dir)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(kernel.name)
    assert client.is_model_ready(kernel.name, kernel.version)
    assert not client.is_model_ready("no-such-model")
    assert not client.is_model_ready(kernel.name, "9.9.9")


def test_model_metadata_matches_contract(served):
    kernel_dir, _server, client = served
    kernel = read_kernel(kernel_dir)
    metadata = client.get_model_metadata(kernel.name)
    assert metadata["name"] == kernel.name
    assert metadata["versions"] == [kernel.version]
    assert (
        metadata["platform"]
        == {
            "onnx": "onnxruntime_onnx",
            "torchscript": "pytorch_libtorch",
            "torch_export": "pytorch_torch_export",
        }[kernel.framework]
    )
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
        (t.name, t.datatype.name, list(t.shape)) for t in kernel.inputs
    ]
    assert [t["name"] for t in metadata["outputs"]] == [t.name for t in kernel.outputs]
    assert client.get_model_metadata(kernel.name, kernel.version) == metadata
    server_metadata = client.get_server_metadata()
    assert "binary_tensor_data" in server_metadata["extensions"]
    assert server_metadata["runtime"]["device"] == "cpu"


@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "binary-out"])
def test_infer_returns_golden_outputs(served, binary_in, binary_out):
    kernel_dir, _server, client = served
    kernel = read_kernel(kernel_dir)
    sample = golden(kernel_dir)
    outputs = [httpclient.InferRequestedOutput(t.name, binary_data=binary_out) for t in kernel.outputs]
    result = client.infer(
        kernel.name,
        _inputs(sample, binary_in),
        outputs=outputs,
        request_id="golden-1",
        model_version=kernel.version,
    )
    response = result.get_response()
    assert response["model_name"] == kernel.name
    assert response["model_version"] == kernel.version
    assert response["id"] == "golden-1"
    tolerance = kernel.tolerance
    for expected in sample["expected"]["outputs"]:
        actual = result.as_numpy(expected["name"])
        assert actual is not None, f"output {expected['name']} missing from {response}"
        assert list(actual.shape) == expected["shape"]
        want = np.array(expected["data"]).reshape(expected["shape"])
        if expected["datatype"] == "FP32":
            np.testing.assert_allclose(actual, want, rtol=tolerance.rtol, atol=tolerance.atol)
        else:
            np.testing.assert_array_equal(actual, want)


def test_infer_without_requested_outputs_returns_all(served):
    kernel_dir, _server, client = served
    kernel = read_kernel(kernel_dir)
    result = client.infer(kernel.name, _inputs(golden(kernel_dir), True))
    for spec in kernel.outputs:
        assert result.as_numpy(spec.name) is not None


def test_infer_error_is_raised_as_triton_exception(served):
    kernel_dir, _server, client = served
    kernel = read_kernel(kernel_dir)
    bad = httpclient.InferInput("not-an-input", [1, 4], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32), binary_data=True)
    with pytest.raises(httpclient.InferenceServerException, match="unknown input 'not-an-input'"):
        client.infer(kernel.name, [bad])
