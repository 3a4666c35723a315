"""A torch.export kernel served by ``shim serve`` over real HTTP, against the program in-process.

The real tritonclient (HTTP, JSON and binary tensors) gets exactly what
``torch.export.load(model.pt2).module()`` returns in this process for the same inputs, at several
batch sizes; concurrent requests are merged by the dynamic batcher (the batch-size histogram shows
executions with more than one request) and each client still gets the answer for its own rows.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

torch = pytest.importorskip("torch")
httpclient = pytest.importorskip("tritonclient.http")

from .conftest import KERNELS, metric_samples  # noqa: E402

DIGITS = KERNELS / "torch-export-digits"


@pytest.fixture(scope="module")
def digits_server(server_factory):
    return server_factory(DIGITS)


@pytest.fixture(scope="module")
def reference():
    """The exported program's own module, in this process: the answer the server must give."""
    module = torch.export.load(str(DIGITS / "model.pt2")).module()

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            result = module(torch.from_numpy(images))
        return {name: value.numpy() for name, value in result.items()}

    return run


def _images(rows: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, size=(rows, 1, 8, 8)).astype(np.float32)


def test_metadata_names_the_torch_export_platform(digits_server):
    body = httpx.get(digits_server.url + "/v2/models/torch-export-digits", timeout=10).json()
    assert body["platform"] == "pytorch_torch_export"
    assert [(t["name"], t["datatype"], t["shape"]) for t in body["inputs"]] == [
        ("image", "FP32", [-1, 1, 8, 8])
    ]
    assert [t["name"] for t in body["outputs"]] == ["probabilities", "label"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("rows", [1, 5, 32])
def test_tritonclient_answer_equals_the_exported_module(digits_server, reference, binary: bool, rows: int):
    images = _images(rows, seed=rows)
    client = httpclient.InferenceServerClient(
        digits_server.address, connection_timeout=10, network_timeout=30
    )
    try:
        infer_input = httpclient.InferInput("image", list(images.shape), "FP32")
        infer_input.set_data_from_numpy(images, binary_data=binary)
        outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("probabilities", "label")]
        result = client.infer("torch-export-digits", [infer_input], outputs=outputs)
    finally:
        client.close()
    expected = reference(images)
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), expected["probabilities"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(result.as_numpy("label"), expected["label"])
    assert result.as_numpy("label").dtype == np.int64


def _histogram(server) -> tuple[float, float]:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    buckets = metric_samples(text, "shim_batch_size_bucket")
    single = next(v for k, v in buckets.items() if "le=1.0" in k)
    total = next(iter(metric_samples(text, "shim_batch_size_count").values()))
    return single, total


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(digits_server, reference):
    local = threading.local()
    inputs = [_images(1 + i % 3, seed=100 + i) for i in range(64)]

    def one(i: int) -> tuple[int, dict]:
        client = getattr(local, "client", None) or httpx.Client(base_url=digits_server.url, timeout=30)
        local.client = client
        x = inputs[i]
        response = client.post(
            "/v2/models/torch-export-digits/infer",
            json={
                "inputs": [
                    {"name": "image", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
                ]
            },
        )
        assert response.status_code == 200, response.text
        return i, response.json()

    before_single, before_total = _histogram(digits_server)
    for _round in range(5):
        with ThreadPoolExecutor(24) as pool:
            results = list(pool.map(one, range(64)))
        for i, body in results:
            expected = reference(inputs[i])
            outputs = {o["name"]: o for o in body["outputs"]}
            assert outputs["label"]["data"] == expected["label"].tolist()
            np.testing.assert_allclose(
                np.array(outputs["probabilities"]["data"]).reshape(expected["probabilities"].shape),
                expected["probabilities"],
                rtol=1e-5,
                atol=1e-6,
            )
        single, total = _histogram(digits_server)
        if total - before_total > single - before_single:
            break
    assert total - before_total > single - before_single, "no execution merged more than one request"


def test_torch_compile_setting_is_validated():
    from shim.server.settings import ServerSettings, settings_from_env

    assert settings_from_env({}, {"KERNELSHIM_TORCH_COMPILE": "default"}).torch_compile == "default"
    with pytest.raises(ValueError, match="--torch-compile / KERNELSHIM_TORCH_COMPILE"):
        ServerSettings(torch_compile="fastest")


def test_compiled_module_serves_the_same_answers(server_factory, reference):
    """--torch-compile default: torch.compile(dynamic=True) of the module, compiled while loading
    (the golden samples run before ready), answering what the eager module answers."""
    server = server_factory(DIGITS, "--torch-compile", "default")
    runtime = httpx.get(server.url + "/v2", timeout=10).json()["runtime"]
    assert runtime["torch_compile"] == "default"
    for rows in (1, 7):
        images = _images(rows, seed=500 + rows)
        response = httpx.post(
            server.url + "/v2/models/torch-export-digits/infer",
            json={
                "inputs": [
                    {
                        "name": "image",
                        "shape": list(images.shape),
                        "datatype": "FP32",
                        "data": images.ravel().tolist(),
                    }
                ]
            },
            timeout=120,
        )
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        expected = reference(images)
        assert outputs["label"]["data"] == expected["label"].tolist()
        np.testing.assert_allclose(
            np.array(outputs["probabilities"]["data"]).reshape(expected["probabilities"].shape),
            expected["probabilities"],
            rtol=1e-4,
            atol=1e-5,
        )
