"""KServe's ``InferenceGRPCClient`` (the ``kserve`` PyPI package), unmodified, against ``shim serve``.

On every example kernel: server live and ready, model ready (and NOT_FOUND for an unknown model),
server and model metadata, inference with typed ``contents`` and with ``raw_input_contents``;
every answer is compared with the REST path's and with the kernel's golden outputs.

kserve pins protobuf<7 and more, so it lives in its own venv (``.ci/install-kserve-client.sh``,
run by ``make tools``) and the client runs there as a subprocess (``kserve_grpc_client.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from shim.contract.kernel import read_kernel
from shim.spec.datatypes import DATATYPES

from .conftest import KERNELS, REPO, free_port, golden

EXAMPLES = sorted(p.name for p in KERNELS.iterdir() if (p / "model_metadata.json").is_file())
CLIENT = Path(__file__).with_name("kserve_grpc_client.py")


def _kserve_python() -> Path:
    for candidate in (os.environ.get("KERNELSHIM_KSERVE_PYTHON"),
                      str(REPO / ".cache" / "kserve-venv" / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            probe = subprocess.run([candidate, "-c", "import kserve"], capture_output=True, timeout=120)
            if probe.returncode == 0:
                return Path(candidate)
    reason = "kserve is not installed (run .ci/install-kserve-client.sh, or set KERNELSHIM_KSERVE_PYTHON)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):  # make test installs it: fail, not skip
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def kserve_python() -> Path:
    return _kserve_python()


def _run_client(python: Path, job: dict) -> dict:
    done = subprocess.run([str(python), str(CLIENT)], input=json.dumps(job), capture_output=True, text=True,
                          timeout=180, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", EXAMPLES)
def test_kserve_grpc_client_end_to_end(server_factory, kserve_python, name: str) -> None:
    kernel_dir = KERNELS / name
    kernel = read_kernel(kernel_dir)
    port = free_port()
    server = server_factory(kernel_dir, "--grpc-port", str(port))
    sample = golden(kernel_dir)
    answer = _run_client(kserve_python, {"address": f"127.0.0.1:{port}", "model": name,
                                         "version": kernel.version, "inputs": sample["request"]["inputs"]})

    assert answer["live"] is True and answer["ready"] is True and answer["model_ready"] is True
    assert answer["unknown_model"] == "NOT_FOUND"
    assert answer["server_metadata"]["name"] == "kernelshim"
    assert "binary_tensor_data" in answer["server_metadata"]["extensions"]
    rest_metadata = httpx.get(f"{server.url}/v2/models/{name}").json()
    for key in ("name", "versions", "platform", "inputs"):
        assert answer["model_metadata"][key] == rest_metadata[key], key
    assert [(o["name"], o["datatype"]) for o in answer["model_metadata"]["outputs"]] == [
        (o["name"], o["datatype"]) for o in rest_metadata["outputs"]]

    # the client really sent each encoding
    assert answer["typed_wire"] == {"raw_input_contents": 0, "typed_inputs": len(sample["request"]["inputs"])}
    assert answer["raw_wire"]["raw_input_contents"] == len(sample["request"]["inputs"])

    rest = httpx.post(f"{server.url}/v2/models/{name}/infer", json=sample["request"], timeout=30)
    assert rest.status_code == 200, rest.text
    rest_outputs = {o["name"]: o for o in rest.json()["outputs"]}
    expected = {o["name"]: o for o in sample["expected"]["outputs"]}
    for mode in ("typed", "raw"):
        result = answer[mode]
        assert result["id"] == f"kserve-{mode}" and result["model_name"] == name
        assert set(result["outputs"]) == set(rest_outputs), mode
        for output_name, got in result["outputs"].items():
            want = rest_outputs[output_name]
            assert got["datatype"] == want["datatype"] and got["shape"] == want["shape"], (mode, output_name)
            dtype = DATATYPES[want["datatype"]].numpy  # JSON prints FP32 shortest; compare as FP32
            np.testing.assert_array_equal(np.array(got["data"], dtype=dtype),
                                          np.array(want["data"], dtype=dtype))
            golden_output = expected[output_name]
            np.testing.assert_allclose(np.array(got["data"], dtype=np.float64).reshape(got["shape"]),
                                       np.array(golden_output["data"], dtype=np.float64)
                                       .reshape(golden_output["shape"]), rtol=1e-4, atol=1e-5)
