"""Dynamic batching and back-pressure over real HTTP.

Concurrent clients with distinct inputs must each get the answer for their own input (batches
are split back correctly), the batch-size histogram must show merged executions, and a full
queue must answer 503 with Retry-After instead of queueing without bound.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import onnxruntime as ort

from .conftest import KERNELS, metric_samples
from .slow_kernel import slow_reference

IRIS = KERNELS / "iris-classifier"


def _batch_histogram(server) -> tuple[float, float]:
    """(executions with one request, all executions) from /metrics."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    buckets = metric_samples(text, "shim_batch_size_bucket")
    single = next(v for k, v in buckets.items() if "le=1.0" in k)
    total = next(iter(metric_samples(text, "shim_batch_size_count").values()))
    return single, total


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(iris_server):
    session = ort.InferenceSession(str(IRIS / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    local = threading.local()

    def one(i: int) -> tuple[int, np.ndarray, dict]:
        client = getattr(local, "client", None) or httpx.Client(base_url=iris_server.url, timeout=30)
        local.client = client
        rows = 1 + i % 3  # mixed row counts exercise the split offsets
        x = rng_inputs[i]
        response = client.post(
            "/v2/models/iris-classifier/infer",
            json={
                "id": f"req-{i}",
                "inputs": [{"name": "X", "shape": [rows, 4], "datatype": "FP32", "data": x.ravel().tolist()}],
            },
        )
        assert response.status_code == 200, response.text
        return i, x, response.json()

    rng_inputs = [rng.uniform(0, 8, size=(1 + i % 3, 4)).astype(np.float32) for i in range(64)]
    rounds = 0
    while True:
        rounds += 1
        with ThreadPoolExecutor(24) as pool:
            results = list(pool.map(one, range(64)))
        for i, x, body in results:
            assert body["id"] == f"req-{i}"
            label, probabilities = session.run(["label", "probabilities"], {"X": x})
            outputs = {o["name"]: o for o in body["outputs"]}
            assert outputs["label"]["shape"] == [x.shape[0]]
            np.testing.assert_array_equal(outputs["label"]["data"], label)
            np.testing.assert_allclose(
                np.array(outputs["probabilities"]["data"]).reshape(x.shape[0], 3),
                probabilities,
                rtol=1e-4,
                atol=1e-6,
            )
        single, total = _batch_histogram(iris_server)
        if total > single or rounds == 5:
            break
    assert total > single, f"no execution merged more than one request in {rounds} rounds of 64"


def _raw_request(body: bytes) -> bytes:
    return (b"POST /v2/models/iris-classifier/infer HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body)


def _read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), json.loads(rest[:length])


def test_requests_that_arrive_together_are_batched_although_the_model_is_fast(server_factory):
    """Requests already waiting on their connections share executions. A fast model runs inline
    on the event loop when a request is alone; counted by running handlers only, a burst looked
    like a row of lone requests (each handler runs to its end before the next starts), so under
    load nothing was ever batched. The server is stopped while the burst is written, so every
    request has arrived before it reads any."""
    server = server_factory(IRIS)
    session = ort.InferenceSession(str(IRIS / "model.onnx"), providers=["CPUExecutionProvider"])
    warm = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.0, 3.0, 1.5, 0.2]}]}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(20):  # measured fast: from now on a lone request runs inline
            assert client.post("/v2/models/iris-classifier/infer", json=warm).status_code == 200
    rng = np.random.default_rng(11)
    rows = [rng.uniform(0, 8, size=(1, 4)).astype(np.float32) for _ in range(16)]
    sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in rows]
    try:
        for sock in sockets:  # accepted before the burst
            sock.sendall(_raw_request(json.dumps(warm).encode()))
            assert _read_response(sock)[0] == 200
        single_before, total_before = _batch_histogram(server)
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            for sock, x in zip(sockets, rows, strict=True):
                body = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
                                    "data": x.ravel().tolist()}]}
                sock.sendall(_raw_request(json.dumps(body).encode()))
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        answers = [_read_response(sock) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    for x, (status, body) in zip(rows, answers, strict=True):
        assert status == 200, body
        label, _ = session.run(["label", "probabilities"], {"X": x})
        assert {o["name"]: o for o in body["outputs"]}["label"]["data"] == label.tolist()
    single, total = _batch_histogram(server)
    executions = total - total_before
    assert executions < len(rows), (
        f"{len(rows)} requests that arrived together ran in {executions} executions "
        f"({single - single_before} of one request)"
    )


def test_slow_model_merges_waiting_requests(server_factory, slow_kernel):
    server = server_factory(slow_kernel)
    reference = slow_reference(slow_kernel)
    inputs = [np.full((1, 8), i / 10, dtype=np.float32) for i in range(8)]

    def one(i: int) -> dict:
        response = httpx.post(
            server.url + "/v2/models/slow-mlp/infer",
            timeout=60,
            json={
                "id": str(i),
                "inputs": [
                    {"name": "x", "shape": [1, 8], "datatype": "FP32", "data": inputs[i].ravel().tolist()}
                ],
            },
        )
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(one, range(8)))
    for i, body in enumerate(bodies):
        assert body["id"] == str(i)
        np.testing.assert_allclose(
            body["outputs"][0]["data"], reference(inputs[i]).ravel(), rtol=1e-5, atol=1e-6
        )
    single, total = _batch_histogram(server)
    # warm-up is not counted; 8 requests while each execution takes ~0.2 s: far fewer than 8 runs
    assert total - single >= 1 and total < 8, (single, total)


def test_full_queue_answers_503_with_retry_after(server_factory, slow_kernel):
    server = server_factory(slow_kernel, "--max-queue-size", "1")
    body = {"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": [0.5] * 8}]}

    def one(_: int) -> httpx.Response:
        return httpx.post(server.url + "/v2/models/slow-mlp/infer", json=body, timeout=60)

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(one, range(12)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503}, codes
    rejected = [r for r in responses if r.status_code == 503]
    assert rejected and codes.count(200) >= 1, codes
    for response in rejected:
        assert response.headers["retry-after"] == "1"
        assert "queue is full (1 waiting)" in response.json()["error"]
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    counts = metric_samples(metrics, "shim_inference_requests_total")
    assert sum(v for k, v in counts.items() if "code=503" in k) == len(rejected)
    # the server recovers once the burst is over
    assert one(0).status_code == 200
