"""Access control (bearer / API-key tokens), server metadata and the Prometheus metrics content."""

from __future__ import annotations

import json

import httpx
import numpy as np

from .conftest import KERNELS, golden, metric_samples

IRIS = KERNELS / "iris-classifier"
INFER = "/v2/models/iris-classifier/infer"


def test_tokens_guard_the_api_but_not_health(server_factory):
    server = server_factory(IRIS, env={"KERNELSHIM_AUTH_TOKENS": "s3cret-one,s3cret-two"})
    request = golden(IRIS)["request"]
    missing = httpx.post(server.url + INFER, json=request)
    assert missing.status_code == 401 and "missing credentials" in missing.json()["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.post(server.url + INFER, json=request, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "invalid credentials" in wrong.json()["error"]
    assert httpx.get(server.url + "/v2/models/iris-classifier").status_code == 401
    assert httpx.get(server.url + "/v2").status_code == 401
    bearer = httpx.post(server.url + INFER, json=request, headers={"Authorization": "Bearer s3cret-one"})
    assert bearer.status_code == 200
    api_key = httpx.post(server.url + INFER, json=request, headers={"X-API-Key": "s3cret-two"})
    assert api_key.status_code == 200
    assert api_key.json()["outputs"] == bearer.json()["outputs"]
    for path in ("/health", "/v2/health/live", "/v2/health/ready", "/metrics"):
        assert httpx.get(server.url + path).status_code == 200, path
    assert "s3cret" not in server.logs()


def test_server_metadata_reports_runtime_choice(iris_server):
    metadata = httpx.get(iris_server.url + "/v2").json()
    assert metadata["name"] == "kernelshim"
    assert {"binary_tensor_data", "health", "metrics"} <= set(metadata["extensions"])
    runtime = metadata["runtime"]
    assert runtime["framework"] == "onnx" and runtime["device"] == "cpu"
    assert runtime["execution"] == ["CPUExecutionProvider"]
    assert runtime["threads"] == 1
    # --device auto on a machine without a GPU build: the fallback is explained, and logged once
    assert "no CUDA or TensorRT execution provider" in runtime["fallback_reason"]
    assert sum(1 for r in iris_server.log_records() if r.get("msg") == "device fallback") == 1


def test_metrics_content(iris_server):
    request = golden(IRIS)["request"]
    for _ in range(3):
        assert httpx.post(iris_server.url + INFER, json=request).status_code == 200
    assert httpx.post(iris_server.url + INFER, json={"inputs": []}).status_code == 400
    response = httpx.get(iris_server.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    counts = metric_samples(text, "shim_inference_requests_total")
    labels = "code={},model=iris-classifier,protocol=rest,version=0.1.0"
    assert counts[labels.format(200)] >= 3 and counts[labels.format(400)] >= 1
    for histogram in (
        "shim_request_duration_seconds",
        "shim_queue_duration_seconds",
        "shim_compute_duration_seconds",
        "shim_batch_size",
    ):
        assert next(iter(metric_samples(text, histogram + "_count").values())) >= 3, histogram
    only = lambda name: next(iter(metric_samples(text, name).values()))  # noqa: E731
    assert only("shim_inflight_requests") == 0
    assert only("shim_model_ready") == 1
    assert 0 < only("shim_model_load_seconds") < 60
    assert only("shim_out_of_memory_total") == 0
    assert "shim_gpu_memory_used_bytes" in text and "shim_gpu_memory_reserved_bytes" in text


def test_model_config_and_stats_extensions(iris_server):
    config = httpx.get(iris_server.url + "/v2/models/iris-classifier/config").json()
    assert config["max_batch_size"] == 64
    assert config["input"] == [{"name": "X", "data_type": "TYPE_FP32", "dims": [4]}]
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 200
    stats = httpx.get(iris_server.url + "/v2/models/iris-classifier/stats").json()
    assert stats["model_stats"][0]["name"] == "iris-classifier"


def test_nested_data_and_binary_output_parameter(iris_server):
    sample = golden(IRIS)
    x = np.array(sample["request"]["inputs"][0]["data"], dtype=np.float32).reshape(2, 4)
    body = {
        "inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": x.tolist()}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }
    response = httpx.post(iris_server.url + INFER, json=body)
    assert response.status_code == 200
    header_length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:header_length])
    assert [o["name"] for o in header["outputs"]] == ["probabilities"]
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 24
    probabilities = np.frombuffer(response.content[header_length:], dtype="<f4").reshape(2, 3)
    expected = np.array(sample["expected"]["outputs"][1]["data"]).reshape(2, 3)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-5)
