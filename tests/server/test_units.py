"""Unit tests on a CPU machine: device selection, CPU quota, and the tensor codec."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from shim.protocol.codec import Limits, ProtocolError, decode_request, decode_tensor, tensor_to_bytes
from shim.runtimes.cpu_quota import available_cpus, cgroup_cpu_limit
from shim.runtimes.device import (
    DeviceError,
    DeviceRequest,
    choose_onnx_providers,
    choose_torch_device,
    parse_device,
)
from shim.spec.datatypes import DATATYPES
from shim.spec.kernel import TensorSpec

CPU_ONLY = ["AzureExecutionProvider", "CPUExecutionProvider"]
GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

# -- device selection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auto", DeviceRequest("auto")),
        ("cpu", DeviceRequest("cpu")),
        ("cuda", DeviceRequest("cuda")),
        ("cuda:1", DeviceRequest("cuda", 1)),
        (" CUDA:0 ", DeviceRequest("cuda", 0)),
    ],
)
def test_parse_device(text, expected):
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["gpu", "cpu:0", "auto:1", "cuda:-1", "cuda:x", ""])
def test_parse_device_rejects(text):
    with pytest.raises(DeviceError, match="use auto, cpu, cuda or cuda:N"):
        parse_device(text)


def test_onnx_auto_prefers_tensorrt_then_cuda_then_cpu():
    choice = choose_onnx_providers(DeviceRequest("auto"), GPU_BUILD)
    assert choice.kind == "cuda" and choice.label == "cuda:0" and choice.fallback_reason is None
    assert choice.detail == GPU_BUILD
    only_cuda = choose_onnx_providers(
        DeviceRequest("cuda", 2), ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert (
        only_cuda.detail == ["CUDAExecutionProvider", "CPUExecutionProvider"] and only_cuda.label == "cuda:2"
    )


def test_onnx_cpu_request_ignores_gpu_providers():
    choice = choose_onnx_providers(DeviceRequest("cpu"), GPU_BUILD)
    assert (
        choice.kind == "cpu" and choice.detail == ["CPUExecutionProvider"] and choice.fallback_reason is None
    )


def test_onnx_auto_without_gpu_build_falls_back_with_reason():
    choice = choose_onnx_providers(DeviceRequest("auto"), CPU_ONLY)
    assert choice.kind == "cpu" and choice.detail == ["CPUExecutionProvider"]
    assert "no CUDA or TensorRT execution provider" in choice.fallback_reason
    assert "AzureExecutionProvider, CPUExecutionProvider" in choice.fallback_reason


def test_onnx_explicit_cuda_without_gpu_build_is_an_error():
    with pytest.raises(DeviceError, match="--device cuda requested but this onnxruntime build"):
        choose_onnx_providers(DeviceRequest("cuda"), CPU_ONLY)


def test_torch_device_choice():
    assert choose_torch_device(DeviceRequest("auto"), True, 2).label == "cuda:0"
    assert choose_torch_device(DeviceRequest("cuda", 1), True, 2).detail == ["cuda:1"]
    assert choose_torch_device(DeviceRequest("cpu"), True, 2).label == "cpu"
    fallback = choose_torch_device(DeviceRequest("auto"), False, 0)
    assert fallback.label == "cpu" and "torch.cuda.is_available() is False" in fallback.fallback_reason
    with pytest.raises(DeviceError, match="only 2 CUDA device"):
        choose_torch_device(DeviceRequest("cuda", 2), True, 2)
    with pytest.raises(DeviceError, match="--device cuda requested"):
        choose_torch_device(DeviceRequest("cuda"), False, 0)


# -- CPU quota -------------------------------------------------------------------------------


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_cgroup_v2_quota(tmp_path):
    _write(tmp_path, "cpu.max", "150000 100000")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    assert available_cpus(tmp_path) == min(2, len(__import__("os").sched_getaffinity(0)))


def test_cgroup_v2_unlimited(tmp_path):
    _write(tmp_path, "cpu.max", "max 100000")
    assert cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_quota(tmp_path):
    _write(tmp_path, "cpu/cpu.cfs_quota_us", "50000")
    _write(tmp_path, "cpu/cpu.cfs_period_us", "100000")
    assert cgroup_cpu_limit(tmp_path) == 0.5
    assert available_cpus(tmp_path) == 1  # a fractional quota still gets one thread


def test_cgroup_v1_unlimited_and_missing(tmp_path):
    _write(tmp_path, "cpu.cfs_quota_us", "-1")
    _write(tmp_path, "cpu.cfs_period_us", "100000")
    assert cgroup_cpu_limit(tmp_path) is None
    assert cgroup_cpu_limit(tmp_path / "nothing-here") is None
    assert available_cpus(tmp_path / "nothing-here") >= 1


# -- codec -----------------------------------------------------------------------------------

NUMERIC = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
]


def _spec(datatype: str, shape=(-1, 3), non_finite=False) -> TensorSpec:
    return TensorSpec("t", DATATYPES[datatype], tuple(shape), non_finite)


def _values(datatype: str) -> np.ndarray:
    if datatype == "BOOL":
        return np.array([[True, False, True], [False, False, True]])
    return (np.arange(6).reshape(2, 3) + 1).astype(DATATYPES[datatype].numpy)


@pytest.mark.parametrize("datatype", NUMERIC)
def test_decode_each_datatype_json_flat_nested_and_binary(datatype):
    spec, expected = _spec(datatype), _values(datatype)
    flat = decode_tensor(
        {"datatype": datatype, "shape": [2, 3], "data": expected.ravel().tolist()}, spec, None, Limits()
    )
    nested = decode_tensor(
        {"datatype": datatype, "shape": [2, 3], "data": expected.tolist()}, spec, None, Limits()
    )
    raw = tensor_to_bytes(expected, DATATYPES[datatype])
    assert len(raw) == 6 * DATATYPES[datatype].itemsize
    binary = decode_tensor({"datatype": datatype, "shape": [2, 3]}, spec, memoryview(raw), Limits())
    for array in (flat, nested, binary):
        assert array.dtype == DATATYPES[datatype].numpy and array.shape == (2, 3)
        np.testing.assert_array_equal(array, expected)


def test_decode_bytes_json_and_binary():
    spec = _spec("BYTES", shape=(-1,))
    decoded = decode_tensor({"datatype": "BYTES", "shape": [2], "data": ["héllo", ""]}, spec, None, Limits())
    assert list(decoded) == ["héllo".encode(), b""]
    raw = tensor_to_bytes(decoded, DATATYPES["BYTES"])
    assert raw == struct.pack("<I", 6) + "héllo".encode() + struct.pack("<I", 0)
    assert list(decode_tensor({"datatype": "BYTES", "shape": [2]}, spec, memoryview(raw), Limits())) == list(
        decoded
    )
    with pytest.raises(ProtocolError, match="BYTES needs strings in 'data', found int"):
        decode_tensor({"datatype": "BYTES", "shape": [1], "data": [3]}, spec, None, Limits())


def test_bool_binary_must_be_zero_or_one():
    with pytest.raises(ProtocolError, match="BOOL bytes must be 0 or 1"):
        decode_tensor(
            {"datatype": "BOOL", "shape": [1, 3]}, _spec("BOOL"), memoryview(b"\x00\x01\x02"), Limits()
        )


def test_non_finite_allowed_only_when_the_contract_says_so():
    entry = {"datatype": "FP32", "shape": [1, 3]}
    raw = memoryview(np.array([1, np.inf, 2], dtype=np.float32).tobytes())
    with pytest.raises(ProtocolError, match="NaN or infinite"):
        decode_tensor(entry, _spec("FP32"), raw, Limits())
    assert np.isinf(decode_tensor(entry, _spec("FP32", non_finite=True), raw, Limits())[0, 1])


def test_element_limit_is_413():
    with pytest.raises(ProtocolError) as error:
        decode_tensor(
            {"datatype": "FP32", "shape": [100, 3]}, _spec("FP32"), None, Limits(max_elements_per_tensor=10)
        )
    assert error.value.status == 413


def test_decode_request_binary_offsets_and_outputs():
    specs = {
        "a": TensorSpec("a", DATATYPES["FP32"], (-1, 2), False),
        "b": TensorSpec("b", DATATYPES["INT64"], (-1,), False),
    }
    a = np.array([[1.5, 2.5]], dtype=np.float32)
    b = np.array([7], dtype=np.int64)
    body = {
        "id": "x",
        "parameters": {"binary_data_output": True},
        "inputs": [
            {"name": "b", "shape": [1], "datatype": "INT64", "parameters": {"binary_data_size": 8}},
            {"name": "a", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
        ],
        "outputs": [{"name": "out", "parameters": {"binary_data": False}}, {"name": "out2"}],
    }
    decoded = decode_request(body, specs, ["out", "out2"], memoryview(b.tobytes() + a.tobytes()))
    np.testing.assert_array_equal(decoded.inputs["a"], a)
    np.testing.assert_array_equal(decoded.inputs["b"], b)
    assert decoded.id == "x" and decoded.batch_size == 1
    assert [(o.name, o.binary) for o in decoded.outputs] == [("out", False), ("out2", True)]


def test_gil_switch_interval_comes_from_the_settings():
    import sys

    from shim.server.main import tune_interpreter
    from shim.server.settings import ServerSettings, settings_from_env

    previous = sys.getswitchinterval()
    try:
        tune_interpreter(settings_from_env({}, {"KERNELSHIM_GIL_SWITCH_INTERVAL_US": "300"}))
        assert sys.getswitchinterval() == pytest.approx(0.0003)
        tune_interpreter(ServerSettings(gil_switch_interval_us=0))  # 0 leaves the interpreter alone
        assert sys.getswitchinterval() == pytest.approx(0.0003)
    finally:
        sys.setswitchinterval(previous)


def test_rest_routes_are_the_openapi_paths() -> None:
    """One list of endpoints: every route is documented, every documented path is routed, and the
    probe paths open to unauthenticated callers are exactly the routes marked open."""
    from shim.server.app import ROUTES
    from shim.server.openapi import build_openapi
    from shim.spec.kernel import kernel_from_metadata

    iris = Path(__file__).resolve().parents[2] / "examples" / "kernels" / "iris-classifier"
    kernel = kernel_from_metadata(iris, json.loads((iris / "model_metadata.json").read_text()))
    document = build_openapi(kernel, auth=True)
    assert {r.path for r in ROUTES if r.path != "/metrics"} == set(document["paths"])
    for route in ROUTES:
        if route.path == "/metrics":
            continue
        operation = document["paths"][route.path][route.method.lower()]
        assert (operation.get("security") == []) == route.open, route


@pytest.mark.parametrize("values, named", [
    ({"port": 0}, "--port / KERNELSHIM_PORT"),
    ({"grpc_port": 70000}, "--grpc-port / KERNELSHIM_GRPC_PORT"),
    ({"port": 9000, "grpc_port": 9000}, "--grpc-port must differ from --port"),
    ({"workers": 0}, "--workers / KERNELSHIM_WORKERS"),
    ({"max_body_bytes": 10}, "--max-body-bytes / KERNELSHIM_MAX_BODY_BYTES"),
    ({"rate_limit_per_s": -1.0}, "--rate-limit-per-s / KERNELSHIM_RATE_LIMIT_PER_S"),
])
def test_out_of_range_settings_are_refused_naming_the_option(values: dict, named: str) -> None:
    from shim.server.settings import ServerSettings, settings_from_env

    with pytest.raises(ValueError, match="invalid server settings") as refused:
        ServerSettings(**values)
    assert named in str(refused.value)
    environ = {f"KERNELSHIM_{k.upper()}": str(v) for k, v in values.items()}
    with pytest.raises(ValueError, match=named.split(" / ")[0]):
        settings_from_env({}, environ)


@pytest.mark.parametrize("tuning", [True, False])
def test_the_collector_is_tuned_once_the_model_is_ready(tuning: bool) -> None:
    """gc_tuning (default on): once loaded, the interpreter's and the model's objects are out of
    the collector's sight (full collections walk only what requests create) and the young
    generation's threshold is raised; off leaves CPython's settings alone."""
    import gc
    import time

    from shim.contract.kernel import read_kernel
    from shim.server.metrics import ServerMetrics
    from shim.server.model_service import YOUNG_THRESHOLD, ModelService
    from shim.server.settings import ServerSettings

    iris = Path(__file__).resolve().parents[2] / "examples" / "kernels" / "iris-classifier"
    thresholds = gc.get_threshold()
    gc.unfreeze()
    settings = ServerSettings(kernel_dir=str(iris), threads=1, gc_tuning=tuning)
    service = ModelService(read_kernel(iris), settings, ServerMetrics("iris-classifier", "1"),
                           in_flight=lambda: 0)
    try:
        service.start()
        deadline = time.monotonic() + 60
        while service.state == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.ready, service.reason
        assert (gc.get_freeze_count() > 10_000) is tuning, gc.get_freeze_count()
        expected = (YOUNG_THRESHOLD, *thresholds[1:]) if tuning else thresholds
        assert gc.get_threshold() == expected
    finally:
        service.stop()
        gc.unfreeze()
        gc.set_threshold(*thresholds)
