"""Start-up, failure and shutdown behaviour of the ``shim serve`` process.

Invalid kernels never start; a model that fails its self-check keeps the server live but not
ready with the reason; a model that raises answers 500 for that request only; SIGTERM drains
every in-flight request and exits 0; ``--workers 2`` serves from two processes.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from .conftest import KERNELS, SHIM, golden, metric_samples
from .slow_kernel import build_slow_kernel, slow_reference

RANKER_INFER = "/v2/models/two-input-ranker/infer"


def _ranker_body(categories: list[int], request_id: str = "r") -> dict:
    rows = len(categories)
    return {
        "id": request_id,
        "inputs": [
            {"name": "features", "shape": [rows, 4], "datatype": "FP32", "data": [0.5] * 4 * rows},
            {"name": "category", "shape": [rows], "datatype": "INT64", "data": categories},
        ],
    }


def test_invalid_kernel_refuses_to_start(tmp_path):
    kernel = tmp_path / "bad"
    shutil.copytree(KERNELS / "iris-classifier", kernel)
    metadata = json.loads((kernel / "model_metadata.json").read_text())
    metadata["inputs"][0]["datatype"] = "FLOAT32"
    (kernel / "model_metadata.json").write_text(json.dumps(metadata))
    result = subprocess.run(
        [*SHIM, "serve", str(kernel), "--host", "127.0.0.1", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "KS004" in result.stderr and "FLOAT32" in result.stderr
    assert f"refusing to serve {kernel}" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_kernel_dir_and_bad_device_are_usage_errors(tmp_path):
    missing = subprocess.run(
        [*SHIM, "serve", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2 and "no such kernel directory" in missing.stderr
    bad = subprocess.run(
        [*SHIM, "serve", str(KERNELS / "iris-classifier"), "--device", "tpu"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "unknown device 'tpu'" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


def test_failed_self_check_keeps_server_live_but_not_ready(tmp_path, server_factory):
    kernel = tmp_path / "tampered"
    shutil.copytree(KERNELS / "iris-classifier", kernel)
    sample = json.loads((kernel / "samples" / "example.json").read_text())
    sample["expected"]["outputs"][1]["data"][0] = 0.5  # static checks pass; the model disagrees
    (kernel / "samples" / "example.json").write_text(json.dumps(sample))
    server = server_factory(kernel, wait=False)
    ready = server.wait_ready(expect_ready=False)
    assert ready.status_code == 503
    assert "golden sample self-check failed" in ready.json()["reason"] and "KS305" in ready.json()["reason"]
    assert httpx.get(server.url + "/v2/health/live").status_code == 200
    assert httpx.get(server.url + "/health").status_code == 503
    assert httpx.get(server.url + "/v2/models/iris-classifier/ready").status_code == 503
    response = httpx.post(server.url + "/v2/models/iris-classifier/infer", json=golden(kernel)["request"])
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert "is not ready: golden sample self-check failed" in response.json()["error"]
    assert "model not ready" in server.logs()


def test_model_error_is_500_and_isolated(ranker_server):
    # category ids are 0-9: 42 makes onnxruntime's Gather fail inside the model
    bad = httpx.post(ranker_server.url + RANKER_INFER, json=_ranker_body([42], "bad"), timeout=30)
    assert bad.status_code == 500
    assert "the model failed" in bad.json()["error"] and "42" in bad.json()["error"]
    good = httpx.post(ranker_server.url + RANKER_INFER, json=_ranker_body([1, 2]), timeout=30)
    assert good.status_code == 200, good.text

    # a failing request batched with good ones fails alone: the batch is retried request by request
    def one(i: int) -> httpx.Response:
        categories = [99] if i == 5 else [i % 10, (i + 1) % 10]
        return httpx.post(ranker_server.url + RANKER_INFER, json=_ranker_body(categories, str(i)), timeout=30)

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(one, range(24)))
    for i, response in enumerate(responses):
        assert response.status_code == (500 if i == 5 else 200), (i, response.text)
        if i != 5:
            assert response.json()["id"] == str(i)
            assert response.json()["outputs"][0]["shape"] == [2, 2]
    assert "Traceback" not in ranker_server.logs()


def test_request_id_in_structured_logs(ranker_server):
    httpx.post(ranker_server.url + RANKER_INFER, json={"id": "trace-me-123", "inputs": []}, timeout=30)
    httpx.post(ranker_server.url + RANKER_INFER, json={"inputs": []}, timeout=30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rejected = [r for r in ranker_server.log_records() if r.get("msg") == "inference rejected"]
        if len(rejected) >= 2 and any(r.get("request_id") == "trace-me-123" for r in rejected):
            break
        time.sleep(0.1)
    mine = [r for r in rejected if r.get("request_id") == "trace-me-123"]
    assert mine and mine[0]["status"] == 400 and mine[0]["level"] == "info" and "ts" in mine[0]
    assert all(r.get("request_id") for r in rejected), "a request without id gets a generated one"


def test_sigterm_finishes_every_in_flight_request(tmp_path_factory, server_factory):
    # no batching: the requests queue and run one after another, so SIGTERM finds most still waiting
    # ~10x the default work per request (tens of ms each on an idle machine is too quick for all six
    # to be seen in flight at once before SIGTERM)
    kernel = build_slow_kernel(tmp_path_factory.mktemp("serial"), iterations=1500, name="slow-serial",
                               max_batch_size=0)
    server = server_factory(kernel)
    reference = slow_reference(kernel)
    count = 6
    inputs = [np.full((1, 8), i, dtype=np.float32) for i in range(count)]

    def one(i: int) -> httpx.Response:
        return httpx.post(
            server.url + "/v2/models/slow-serial/infer",
            timeout=60,
            json={
                "id": str(i),
                "inputs": [
                    {"name": "x", "shape": [1, 8], "datatype": "FP32", "data": inputs[i].ravel().tolist()}
                ],
            },
        )

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(one, i) for i in range(count)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until the server has accepted all of them
            text = httpx.get(server.url + "/metrics", timeout=5).text
            if next(iter(metric_samples(text, "shim_inflight_requests").values())) == count:
                break
            time.sleep(0.02)
        else:
            pytest.fail("requests never all in flight")
        server.process.send_signal(signal.SIGTERM)
        responses = [f.result() for f in futures]
    assert server.process.wait(60) == 0, server.logs()[-3000:]
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == str(i)
        np.testing.assert_allclose(
            body["outputs"][0]["data"], reference(inputs[i]).ravel(), rtol=1e-5, atol=1e-6
        )
    assert "shutdown signal received; draining" in server.logs()
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/v2/health/live", timeout=2)


def test_two_workers_serve_and_stop_cleanly(server_factory):
    server = server_factory(KERNELS / "iris-classifier", "--workers", "2")
    sample = golden(KERNELS / "iris-classifier")
    # readiness answered by one worker says nothing of the other: wait until both have loaded
    # (each logs "model ready"), else a new connection may reach one still loading (503, correctly)
    deadline = time.monotonic() + 60
    while server.logs().count('"model ready"') < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.logs().count('"model ready"') == 2
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(10):
            response = client.post(
                "/v2/models/iris-classifier/infer", json=sample["request"], headers={"Connection": "close"}
            )
            assert response.status_code == 200
            assert response.json()["outputs"][0]["data"] == sample["expected"]["outputs"][0]["data"]
    assert server.stop() == 0
