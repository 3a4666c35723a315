"""GPU code paths: run where a CUDA device exists, skipped with the reason printed otherwise.

The device *selection* logic is unit-tested on CPU in test_units.py; these tests load the
example kernels on a real GPU and check the golden outputs, the device reported in /v2, and
the GPU memory gauges.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from shim.contract.kernel import read_kernel
from shim.contract.samples import load_samples, run_samples
from shim.runtimes.base import load_runtime

from .conftest import KERNELS


def _onnx_gpu() -> str | None:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" in available or "TensorrtExecutionProvider" in available:
        return None
    return f"onnxruntime offers no CUDA/TensorRT execution provider (available: {', '.join(available)})"


def _torch_gpu() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} reports no CUDA device (torch.cuda.is_available() is False)"
    return None


GPU_KERNELS = [
    ("iris-classifier", _onnx_gpu),
    ("two-input-ranker", _onnx_gpu),
    ("torchscript-mlp", _torch_gpu),
]


@pytest.mark.gpu
@pytest.mark.parametrize(("name", "probe"), GPU_KERNELS, ids=[k for k, _ in GPU_KERNELS])
def test_kernel_runs_golden_samples_on_cuda(name, probe):
    reason = probe()
    if reason:
        pytest.skip(f"no GPU for {name}: {reason}")
    kernel = read_kernel(KERNELS / name)
    runtime = load_runtime(kernel, device="cuda")
    try:
        assert runtime.device.kind == "cuda" and runtime.device.fallback_reason is None
        samples, findings = load_samples(kernel)
        assert not findings
        assert run_samples(kernel, runtime, samples) == []
        # a merged batch on the GPU splits back like on CPU
        rows = 5
        inputs = {t.name: (np.zeros((rows, *t.shape[1:]), dtype=t.datatype.numpy)) for t in kernel.inputs}
        outputs = runtime.predict(inputs)
        assert all(v.shape[0] == rows for v in outputs.values())
        if kernel.framework == "torchscript":
            assert runtime.memory_stats()["allocated"] >= 0
    finally:
        runtime.close()


@pytest.mark.gpu
def test_served_on_cuda_reports_device_and_memory(server_factory):
    reason = _torch_gpu()
    if reason:
        pytest.skip(f"no GPU for shim serve --device cuda: {reason}")
    server = server_factory(KERNELS / "torchscript-mlp", "--device", "cuda")
    assert httpx.get(server.url + "/v2").json()["runtime"]["device"] == "cuda:0"
    sample = json.loads((KERNELS / "torchscript-mlp" / "samples" / "example.json").read_text())
    assert (
        httpx.post(server.url + "/v2/models/torchscript-mlp/infer", json=sample["request"]).status_code == 200
    )
    assert "shim_gpu_memory_reserved_bytes" in httpx.get(server.url + "/metrics").text


def test_explicit_cuda_without_gpu_is_not_ready_with_reason(server_factory):
    if _onnx_gpu() is None:
        pytest.skip("this machine has a CUDA onnxruntime build; the no-GPU path cannot be shown here")
    server = server_factory(KERNELS / "iris-classifier", "--device", "cuda", wait=False)
    ready = server.wait_ready(expect_ready=False)
    assert "--device cuda requested but this onnxruntime build offers no CUDA" in ready.json()["reason"]
    assert httpx.get(server.url + "/v2/health/live").status_code == 200
