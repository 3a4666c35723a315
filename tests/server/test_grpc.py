"""The gRPC transport against real `shim serve` processes, over loopback.

Unmodified ``tritonclient.grpc`` on every example kernel (live, ready, model ready, metadata,
config, statistics, infer with raw contents), typed ``contents`` through the vendored stubs, the
standard health service, the error codes of malformed calls, authentication, metrics labelled by
protocol, and SIGTERM with gRPC calls in flight. Every answer is compared with the REST path's.
"""

from __future__ import annotations

import concurrent.futures
import signal
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shim.protocol import grpc as oip
from shim.protocol.grpc_codec import CONTENTS_FIELD

from .conftest import KERNELS, free_port, golden, metric_samples
from .slow_kernel import build_slow_kernel

EXAMPLES = sorted(p.name for p in KERNELS.iterdir() if (p / "model_metadata.json").is_file())


def _serve(server_factory, kernel: Path, *args: str, env: dict[str, str] | None = None):
    port = free_port()
    server = server_factory(kernel, "--grpc-port", str(port), *args, env=env)
    server.grpc_address = f"127.0.0.1:{port}"
    return server


def _rest_outputs(server, kernel: Path) -> dict[str, np.ndarray]:
    response = httpx.post(f"{server.url}/v2/models/{kernel.name}/infer", json=golden(kernel)["request"])
    assert response.status_code == 200, response.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in response.json()["outputs"]}


def _sample_arrays(kernel: Path) -> list[tuple[str, str, np.ndarray]]:
    from shim.spec.datatypes import DATATYPES

    arrays = []
    for entry in golden(kernel)["request"]["inputs"]:
        dtype = DATATYPES[entry["datatype"]].numpy
        array = np.array(entry["data"], dtype=dtype).reshape(entry["shape"])
        arrays.append((entry["name"], entry["datatype"], array))
    return arrays


@pytest.fixture(scope="module")
def servers(server_factory) -> dict[str, object]:
    return {name: _serve(server_factory, KERNELS / name) for name in EXAMPLES}


@pytest.mark.parametrize("name", EXAMPLES)
def test_tritonclient_grpc_end_to_end(servers, name: str) -> None:
    server, kernel = servers[name], KERNELS / name
    client = triton_grpc.InferenceServerClient(server.grpc_address)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(name)
    assert client.get_server_metadata().name == "kernelshim"
    metadata = client.get_model_metadata(name)
    rest_metadata = httpx.get(f"{server.url}/v2/models/{name}").json()
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        (t["name"], t["datatype"], t["shape"]) for t in rest_metadata["inputs"]]
    assert client.get_model_config(name).config.name == name
    assert client.get_inference_statistics(name).model_stats[0].name == name

    inputs = []
    for input_name, datatype, array in _sample_arrays(kernel):
        tensor = triton_grpc.InferInput(input_name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = client.infer(name, inputs)  # tritonclient sends raw_input_contents
    rest = _rest_outputs(server, kernel)
    for output, expected in rest.items():
        np.testing.assert_allclose(result.as_numpy(output).astype(np.float64), expected.astype(np.float64),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", EXAMPLES)
def test_typed_contents_equal_the_rest_answer(servers, name: str) -> None:
    server, kernel = servers[name], KERNELS / name
    request = oip.ModelInferRequest(model_name=name, id="typed-1")
    for input_name, datatype, array in _sample_arrays(kernel):
        tensor = request.inputs.add(name=input_name, datatype=datatype, shape=list(array.shape))
        getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(array.ravel().tolist())
    with grpc.insecure_channel(server.grpc_address) as channel:
        response = oip.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert response.id == "typed-1" and response.model_name == name
    rest = _rest_outputs(server, kernel)
    from shim.spec.datatypes import DATATYPES

    for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        got = np.frombuffer(raw, dtype=DATATYPES[tensor.datatype].numpy).reshape(list(tensor.shape))
        np.testing.assert_allclose(got.astype(np.float64), rest[tensor.name].astype(np.float64), rtol=1e-6)


def test_health_service_serves_only_when_ready(server_factory, tmp_path_factory) -> None:
    ready = _serve(server_factory, KERNELS / "iris-classifier")
    with grpc.insecure_channel(ready.grpc_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as unknown:
            health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    import json
    import shutil

    broken = tmp_path_factory.mktemp("broken") / "iris-classifier"
    shutil.copytree(KERNELS / "iris-classifier", broken)
    sample = broken / "samples" / "example.json"
    document = json.loads(sample.read_text())
    document["expected"]["outputs"][0]["data"] = [2]  # the self-check fails: live, never ready
    sample.write_text(json.dumps(document))
    port = free_port()
    failing = server_factory(broken, "--grpc-port", str(port), wait=False)
    failing.wait_ready(expect_ready=False)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING


def _call(address: str, request, metadata=()):
    with grpc.insecure_channel(address) as channel:
        return oip.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30, metadata=metadata)


def _request(**changes) -> object:
    request = oip.ModelInferRequest(model_name=changes.pop("model", "iris-classifier"))
    tensor = request.inputs.add(name=changes.pop("name", "X"), datatype=changes.pop("datatype", "FP32"),
                                shape=changes.pop("shape", [1, 4]))
    values = changes.pop("values", [5.1, 3.5, 1.4, 0.2])
    field = changes.pop("field", "fp32_contents")
    if "raw" in changes:
        request.raw_input_contents.append(changes.pop("raw"))
    else:
        getattr(tensor.contents, field).extend(values)
    assert not changes
    return request


@pytest.mark.parametrize("request_kwargs, code", [
    ({"name": "Z"}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"datatype": "FP64", "field": "fp64_contents"}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"field": "int64_contents", "values": [1, 2, 3, 4]}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"shape": [1, 5]}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"shape": [2, 4]}, grpc.StatusCode.INVALID_ARGUMENT),  # 4 values for 8 elements
    ({"raw": b"\x00" * 7}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"values": [float("nan"), 1.0, 2.0, 3.0]}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"model": "nope"}, grpc.StatusCode.NOT_FOUND),
    ({"raw": b"\x00" * (2 * 1024 * 1024)}, grpc.StatusCode.RESOURCE_EXHAUSTED),  # over --max-body-bytes
])
def test_malformed_calls_get_their_code_and_the_server_keeps_serving(server_factory, request_kwargs, code):
    server = _limited_server(server_factory)
    with pytest.raises(grpc.RpcError) as failure:
        _call(server.grpc_address, _request(**request_kwargs))
    assert failure.value.code() == code, failure.value.details()
    assert failure.value.details()
    assert _call(server.grpc_address, _request()).outputs[0].name == "label"


_LIMITED: dict[str, object] = {}


def _limited_server(server_factory):
    if "server" not in _LIMITED:
        _LIMITED["server"] = _serve(server_factory, KERNELS / "iris-classifier",
                                    "--max-body-bytes", "1048576")
    return _LIMITED["server"]


def test_tokens_guard_grpc_as_they_guard_rest(server_factory) -> None:
    tokens = {"KERNELSHIM_AUTH_TOKENS": "s3cret-token"}
    server = _serve(server_factory, KERNELS / "iris-classifier", env=tokens)
    client = triton_grpc.InferenceServerClient(server.grpc_address)
    assert client.is_server_live()  # liveness stays open for probes
    for metadata in ((), (("authorization", "Bearer wrong"),)):
        with pytest.raises(grpc.RpcError) as failure:
            _call(server.grpc_address, _request(), metadata)
        assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _call(server.grpc_address, _request(), (("authorization", "Bearer s3cret-token"),)).outputs
    assert _call(server.grpc_address, _request(), (("x-api-key", "s3cret-token"),)).outputs
    headers = {"Authorization": "Bearer s3cret-token"}
    text = httpx.get(server.url + "/metrics", headers=headers).text
    counts = metric_samples(text, "shim_inference_requests_total")
    assert counts["code=200,model=iris-classifier,protocol=grpc,version=0.1.0"] == 2


def test_sigterm_answers_every_in_flight_grpc_call(server_factory, tmp_path_factory) -> None:
    kernel = build_slow_kernel(tmp_path_factory.mktemp("slow-grpc"), iterations=1500, name="slow-grpc",
                               max_batch_size=0)
    server = _serve(server_factory, kernel)
    x = np.ones((1, 8), dtype=np.float32)

    def one(_: int) -> np.ndarray:
        request = oip.ModelInferRequest(model_name="slow-grpc")
        request.inputs.add(name="x", datatype="FP32", shape=[1, 8]).contents.fp32_contents.extend(x.ravel())
        response = _call(server.grpc_address, request)
        return np.frombuffer(response.raw_output_contents[0], dtype=np.float32)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(one, i) for i in range(6)]
        time.sleep(0.5)  # the calls are in flight (each takes a while on this model)
        server.process.send_signal(signal.SIGTERM)
        answers = [f.result(timeout=120) for f in futures]
    assert len(answers) == 6 and all(a.size for a in answers)
    assert server.process.wait(timeout=60) == 0
