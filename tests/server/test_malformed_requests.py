"""Malformed requests: each gets the specified 4xx and a message naming the problem.

One shared server per kernel; every case is sent over real HTTP, and after all of them the same
server must still answer a valid request with the golden outputs (a client's mistake never
breaks the server, and never turns into a 500).
"""

from __future__ import annotations

import gzip
import json
import struct
from dataclasses import dataclass

import httpx
import numpy as np
import pytest

from .conftest import KERNELS, golden

IRIS = "/v2/models/iris-classifier/infer"
RANKER = "/v2/models/two-input-ranker/infer"
ROW = [5.1, 3.5, 1.4, 0.2]


def _x(shape=(1, 4), data=None, datatype="FP32", **extra) -> dict:
    entry = {
        "name": "X",
        "shape": list(shape),
        "datatype": datatype,
        "data": ROW * (int(np.prod(shape)) // 4) if data is None else data,
    }
    entry.update(extra)
    return entry


def _binary(document: dict, tail: bytes) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(document).encode()
    return header + tail, {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def _ranker(features_rows: int, categories: list[int]) -> dict:
    return {
        "inputs": [
            {
                "name": "features",
                "shape": [features_rows, 4],
                "datatype": "FP32",
                "data": ROW * features_rows,
            },
            {"name": "category", "shape": [len(categories)], "datatype": "INT64", "data": categories},
        ]
    }


@dataclass(frozen=True)
class Case:
    id: str
    path: str
    status: int
    message: str
    body: bytes | dict | None = None
    headers: dict[str, str] | None = None
    method: str = "POST"


NAN_BYTES = np.array([[np.nan, 1, 2, 3]], dtype=np.float32).tobytes()
GOOD_BYTES = np.array([ROW], dtype=np.float32).tobytes()

CASES = [
    Case("bad-json", IRIS, 400, "not valid JSON", b'{"inputs": [', {"Content-Type": "application/json"}),
    Case("not-utf8", IRIS, 400, "not valid JSON", b"\xff\xfe{}"),
    Case("empty-body", IRIS, 400, "not valid JSON", b""),
    Case("body-is-array", IRIS, 400, "must be a JSON object", b"[1, 2]"),
    Case("no-inputs", IRIS, 400, "non-empty 'inputs' list", {"id": "x"}),
    Case("empty-inputs", IRIS, 400, "non-empty 'inputs' list", {"inputs": []}),
    Case("input-not-object", IRIS, 400, "string 'name'", {"inputs": ["X"]}),
    Case("unknown-input", IRIS, 400, "unknown input 'Y'", {"inputs": [{**_x(), "name": "Y"}]}),
    Case("input-twice", IRIS, 400, "given twice", {"inputs": [_x(), _x()]}),
    Case(
        "wrong-datatype",
        IRIS,
        400,
        "datatype 'INT32' does not match the contract's FP32",
        {"inputs": [_x(datatype="INT32", data=[1, 2, 3, 4])]},
    ),
    Case("not-a-v2-datatype", IRIS, 400, "not a v2 datatype", {"inputs": [_x(datatype="float32")]}),
    Case("wrong-rank", IRIS, 400, "has 1 dimensions", {"inputs": [_x(shape=(4,))]}),
    Case("wrong-fixed-dim", IRIS, 400, "dimension 1 is 5", {"inputs": [_x(shape=(1, 5), data=[1.0] * 5)]}),
    Case("negative-dim", IRIS, 400, "non-negative integers", {"inputs": [_x(shape=(-1, 4))]}),
    Case("shape-not-list", IRIS, 400, "'shape' must be a list", {"inputs": [{**_x(), "shape": "1x4"}]}),
    Case(
        "batch-over-max", IRIS, 400, "exceeds the model's max_batch_size 64", {"inputs": [_x(shape=(65, 4))]}
    ),
    Case(
        "truncated-data",
        IRIS,
        400,
        "'data' has 3 elements but shape [1, 4] needs 4",
        {"inputs": [_x(data=[1.0, 2.0, 3.0])]},
    ),
    Case("too-much-data", IRIS, 400, "'data' has 8 elements", {"inputs": [_x(data=ROW * 2)]}),
    Case(
        "strings-for-numbers",
        IRIS,
        400,
        "needs numbers in 'data', found str",
        {"inputs": [_x(data=["a", "b", "c", "d"])]},
    ),
    Case(
        "bools-for-numbers", IRIS, 400, "found true/false", {"inputs": [_x(data=[True, False, True, False])]}
    ),
    Case("null-in-data", IRIS, 400, "needs numbers in 'data'", {"inputs": [_x(data=[1.0, None, 2.0, 3.0])]}),
    Case("data-not-list", IRIS, 400, "'data' must be a list", {"inputs": [_x(data="1,2,3,4")]}),
    Case(
        "no-data",
        IRIS,
        400,
        "no 'data' and no parameters.binary_data_size",
        {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32"}]},
    ),
    Case("ragged-nested-data", IRIS, 400, "ragged", {"inputs": [_x(shape=(2, 4), data=[ROW, [1.0, 2.0]])]}),
    Case("overflow-to-inf", IRIS, 400, "NaN or infinite", {"inputs": [_x(data=[1e39, 1.0, 1.0, 1.0])]}),
    Case(
        "binary-nan",
        IRIS,
        400,
        "NaN or infinite",
        *_binary(
            {
                "inputs": [
                    {"name": "X", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}
                ]
            },
            NAN_BYTES,
        ),
    ),
    Case(
        "binary-size-wrong-for-shape",
        IRIS,
        400,
        "binary_data_size is 16 bytes but shape [2, 4] of FP32 needs 32",
        *_binary(
            {
                "inputs": [
                    {"name": "X", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}
                ]
            },
            GOOD_BYTES,
        ),
    ),
    Case(
        "binary-truncated-body",
        IRIS,
        400,
        "add up to 16 bytes but the body carries 8",
        *_binary(
            {
                "inputs": [
                    {"name": "X", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}
                ]
            },
            GOOD_BYTES[:8],
        ),
    ),
    Case(
        "binary-without-header-length",
        IRIS,
        400,
        "add up to 16 bytes",
        {
            "inputs": [
                {"name": "X", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}
            ]
        },
    ),
    Case(
        "binary-size-negative",
        IRIS,
        400,
        "binary_data_size must be a non-negative integer",
        {"inputs": [{**_x(), "parameters": {"binary_data_size": -4}}]},
    ),
    Case(
        "header-length-not-int",
        IRIS,
        400,
        "Inference-Header-Content-Length must be an integer",
        b'{"inputs": []}',
        {"Inference-Header-Content-Length": "abc"},
    ),
    Case(
        "header-length-past-body",
        IRIS,
        400,
        "outside the body",
        b'{"inputs": []}',
        {"Inference-Header-Content-Length": "999"},
    ),
    Case("id-not-string", IRIS, 400, "'id' must be a string", {"id": 7, "inputs": [_x()]}),
    Case(
        "parameters-not-object",
        IRIS,
        400,
        "'parameters' must be an object",
        {"parameters": [1], "inputs": [_x()]},
    ),
    Case(
        "unknown-output",
        IRIS,
        400,
        "unknown output 'logits'",
        {"inputs": [_x()], "outputs": [{"name": "logits"}]},
    ),
    Case(
        "output-binary-flag-not-bool",
        IRIS,
        400,
        "binary_data must be true or false",
        {"inputs": [_x()], "outputs": [{"name": "label", "parameters": {"binary_data": "yes"}}]},
    ),
    Case("bad-gzip", IRIS, 400, "not valid gzip", b"this is not gzip", {"Content-Encoding": "gzip"}),
    Case(
        "unsupported-encoding",
        IRIS,
        415,
        "unsupported Content-Encoding 'br'",
        b"{}",
        {"Content-Encoding": "br"},
    ),
    Case("unknown-model", "/v2/models/resnet/infer", 404, "unknown model 'resnet'", {"inputs": [_x()]}),
    Case(
        "unknown-version",
        "/v2/models/iris-classifier/versions/7/infer",
        404,
        "unknown version '7'",
        {"inputs": [_x()]},
    ),
    Case("unknown-model-metadata", "/v2/models/resnet", 404, "unknown model 'resnet'", method="GET"),
    Case(
        "unknown-endpoint", "/v2/models/iris-classifier/explain", 404, "no such endpoint", {"inputs": [_x()]}
    ),
    Case("unknown-path", "/v1/models/iris-classifier:predict", 404, "no such endpoint", {"inputs": [_x()]}),
    Case("get-on-infer", IRIS, 405, "method GET not allowed", method="GET"),
    Case("post-on-metadata", "/v2/models/iris-classifier", 405, "method POST not allowed", {}),
    # the two-input ranker: FP32 + INT64
    Case(
        "missing-input",
        RANKER,
        400,
        "missing input(s) 'category'",
        {"inputs": [_ranker(1, [1])["inputs"][0]]},
    ),
    Case("batch-disagreement", RANKER, 400, "disagree on the batch dimension", _ranker(2, [1, 2, 3])),
    Case(
        "fractional-int64",
        RANKER,
        400,
        "needs integers in 'data'",
        {
            "inputs": [
                _ranker(1, [1])["inputs"][0],
                {"name": "category", "shape": [1], "datatype": "INT64", "data": [1.5]},
            ]
        },
    ),
    Case(
        "int64-out-of-range",
        RANKER,
        400,
        "outside the INT64 range",
        {
            "inputs": [
                _ranker(1, [1])["inputs"][0],
                {"name": "category", "shape": [1], "datatype": "INT64", "data": [2**63]},
            ]
        },
    ),
    Case(
        "int64-as-fp32",
        RANKER,
        400,
        "datatype 'FP32' does not match the contract's INT64",
        {
            "inputs": [
                _ranker(1, [1])["inputs"][0],
                {"name": "category", "shape": [1], "datatype": "FP32", "data": [1.0]},
            ]
        },
    ),
]


@pytest.fixture(scope="module")
def servers(server_factory):
    return {
        "iris": server_factory(KERNELS / "iris-classifier"),
        "ranker": server_factory(KERNELS / "two-input-ranker"),
    }


def _send(server, case: Case) -> httpx.Response:
    headers = dict(case.headers or {})
    body = case.body
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    return httpx.request(case.method, server.url + case.path, content=body, headers=headers, timeout=30)


def test_at_least_twenty_kinds():
    assert len({c.id for c in CASES}) == len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_request_gets_specific_4xx(servers, case):
    server = servers["ranker" if case.path.startswith("/v2/models/two-input-ranker") else "iris"]
    response = _send(server, case)
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert case.message in error, error


def test_oversized_body_gets_413(server_factory):
    server = server_factory(KERNELS / "iris-classifier", "--max-body-bytes", "1024")
    big = {"inputs": [_x(shape=(64, 4))]}  # about 1.3 KB of JSON
    response = httpx.post(server.url + IRIS, json=big, timeout=30)
    assert response.status_code == 413
    assert "exceeds the limit of 1024 bytes" in response.json()["error"]

    # chunked upload without Content-Length: the limit holds while streaming too
    def chunks():
        data = json.dumps(big).encode()
        for start in range(0, len(data), 512):
            yield data[start : start + 512]

    response = httpx.post(server.url + IRIS, content=chunks(), timeout=30)
    assert response.status_code == 413
    assert "exceeds the limit of 1024 bytes" in response.json()["error"]
    # a gzip bomb: small on the wire, over the limit once decompressed
    bomb = gzip.compress(json.dumps({"inputs": [_x()], "pad": " " * 100_000}).encode())
    assert len(bomb) < 1024
    response = httpx.post(server.url + IRIS, content=bomb, headers={"Content-Encoding": "gzip"}, timeout=30)
    assert response.status_code == 413
    assert "decompressed body exceeds" in response.json()["error"]
    # and a request within the limit still works
    response = httpx.post(server.url + IRIS, json={"inputs": [_x()]}, timeout=30)
    assert response.status_code == 200, response.text


def test_valid_requests_still_answered_correctly_afterwards(servers):
    for key, kernel in (("iris", "iris-classifier"), ("ranker", "two-input-ranker")):
        sample = golden(KERNELS / kernel)
        response = httpx.post(
            f"{servers[key].url}/v2/models/{kernel}/infer",
            json={"id": "after", **sample["request"]},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == "after"
        for expected in sample["expected"]["outputs"]:
            actual = next(o for o in body["outputs"] if o["name"] == expected["name"])
            np.testing.assert_allclose(actual["data"], expected["data"], rtol=1e-4, atol=1e-5)
    # gzip-compressed request bodies (tritonclient's request_compression_algorithm) are accepted
    sample = golden(KERNELS / "iris-classifier")
    response = httpx.post(
        servers["iris"].url + IRIS,
        content=gzip.compress(json.dumps(sample["request"]).encode()),
        headers={"Content-Encoding": "gzip"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_no_client_mistake_became_a_500_or_traceback(servers):
    for server in servers.values():
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        assert 'code="500"' not in metrics
        assert "Traceback" not in server.logs()


def test_binary_bytes_length_prefix_is_checked():
    """Unit check of the BYTES binary layout the server shares with the codec."""
    from shim.protocol.codec import ProtocolError, _bytes_from_binary

    good = struct.pack("<I", 3) + b"abc" + struct.pack("<I", 0)
    assert list(_bytes_from_binary(memoryview(good), "s")) == [b"abc", b""]
    with pytest.raises(ProtocolError, match="ends inside a length prefix"):
        _bytes_from_binary(memoryview(good + b"\x01"), "s")
    with pytest.raises(ProtocolError, match="runs past the data"):
        _bytes_from_binary(memoryview(struct.pack("<I", 9) + b"abc"), "s")
