"""The deployment's KERNELSHIM_* variables (what `shim tf vars` and the Terraform modules set)
are checked against the kernel and applied to the batcher."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess

import httpx
import pytest

from shim.contract.kernel import read_kernel
from shim.server.deployment import DeploymentMismatch, apply_deployment
from shim.server.settings import ServerSettings, settings_from_env
from tests.server.conftest import KERNELS, SHIM

IRIS = KERNELS / "iris-classifier"


def settings(**values) -> ServerSettings:
    return ServerSettings(kernel_dir=str(IRIS), **values)


def test_defaults_leave_the_contract_alone():
    kernel = read_kernel(IRIS)
    assert apply_deployment(kernel, settings()) == kernel


def test_matching_identity_and_batching_overrides_from_the_environment():
    kernel = read_kernel(IRIS)
    env = {"KERNELSHIM_MODEL_NAME": kernel.name, "KERNELSHIM_MODEL_VERSION": kernel.version,
           "KERNELSHIM_MAX_BATCH_SIZE": "8", "KERNELSHIM_MAX_QUEUE_DELAY_US": "50"}
    served = apply_deployment(kernel, settings_from_env({"kernel_dir": str(IRIS)}, env))
    assert (served.batching.max_batch_size, served.batching.max_queue_delay_us) == (8, 50)
    assert served.inputs == kernel.inputs and served.name == kernel.name


def test_only_the_delay_overridden_keeps_the_contract_batch_size():
    kernel = read_kernel(IRIS)
    served = apply_deployment(kernel, settings(max_queue_delay_us=0))
    assert served.batching.max_batch_size == kernel.batching.max_batch_size
    assert served.batching.max_queue_delay_us == 0


@pytest.mark.parametrize("field, value, named", [
    ("model_name", "fraud-model", "KERNELSHIM_MODEL_NAME='fraud-model'"),
    ("model_version", "9.9.9", "KERNELSHIM_MODEL_VERSION='9.9.9'"),
    ("max_batch_size", 65, "exceeds the contract's batching.max_batch_size 64"),
])
def test_contradictions_are_refused_with_the_variable_named(field, value, named):
    with pytest.raises(DeploymentMismatch) as info:
        apply_deployment(read_kernel(IRIS), settings(**{field: value}))
    assert named in str(info.value) and "model_metadata.json" in str(info.value)


def test_batching_cannot_be_switched_on_from_outside():
    kernel = read_kernel(IRIS)
    unbatched = dataclasses.replace(kernel, batching=dataclasses.replace(kernel.batching, max_batch_size=0))
    with pytest.raises(DeploymentMismatch, match=r"KERNELSHIM_MAX_BATCH_SIZE=4 but .* sets batching"):
        apply_deployment(unbatched, settings(max_batch_size=4))


def _env(**values: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KERNELSHIM_")}
    return {**environment, **values}


def test_serve_refuses_an_image_that_holds_another_model(tmp_path):
    kernel = tmp_path / "iris"
    shutil.copytree(IRIS, kernel)
    result = subprocess.run(
        [*SHIM, "serve", str(kernel), "--host", "127.0.0.1", "--port", "1"],
        capture_output=True, text=True, timeout=60, env=_env(KERNELSHIM_MODEL_NAME="fraud-model"),
    )
    assert result.returncode == 1, result.stderr
    assert f"refusing to serve {kernel}" in result.stderr and "KERNELSHIM_MODEL_NAME" in result.stderr
    assert "Traceback" not in result.stderr


def test_served_config_reflects_the_deployment_batching(server_factory):
    name = json.loads((IRIS / "model_metadata.json").read_text())["name"]
    server = server_factory(IRIS, env={"KERNELSHIM_MODEL_NAME": name, "KERNELSHIM_MAX_BATCH_SIZE": "4",
                                       "KERNELSHIM_MAX_QUEUE_DELAY_US": "100"})
    config = httpx.get(f"{server.url}/v2/models/{name}/config", timeout=5).json()
    assert config["max_batch_size"] == 4
    assert config["dynamic_batching"] == {"max_queue_delay_microseconds": 100}
