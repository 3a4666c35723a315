"""Real builds with a real engine: Level 0 on a debootstrapped Debian, Level 1 (CPU), Level 2 for
the iris example, the container run as a non-root user and asked for an inference over HTTP and
over gRPC.

The Level 0/1 images are session fixtures (conftest.py); the engine's layer cache makes them take
seconds after the first run. Level-2 images built here are removed at the end of the session.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shim import __version__
from shim.images.builder import (
    BaseBuildOptions,
    BuildFailed,
    BuiltImage,
    RuntimeMismatch,
    build_base,
    build_kernel,
)
from shim.images.digest import kernel_digest
from shim.policy.loader import load_policies

from .conftest import (
    BUILD_NETWORK,
    BUILD_SECONDS,
    EXAMPLE_KERNEL,
    LEVEL0_TAG,
    LEVEL1_TAG,
    REPO,
    TEST_CA,
    TEST_TAG_PREFIX,
)

pytestmark = [pytest.mark.containers, pytest.mark.slow]
KERNEL_USER = "10001:10001"
READY_TIMEOUT_S = 90
REST_PORT = "8080/tcp"
GRPC_PORT = "8081/tcp"  # KServe's gRPC port
#: kernelshim's `grpc` extra: without these the served kernel would answer REST only.
GRPC_PACKAGES = {"grpcio", "protobuf", "grpcio-health-checking"}


def _shim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shim.cli.main", *args],
        capture_output=True, text=True, timeout=900, check=False,
    )


def _run(engine: Any, image: str, script: str, **environment: str) -> str:
    """Output of ``sh -c script`` in a fresh container of ``image`` (as the image's user)."""
    output = engine.containers.run(
        image, ["sh", "-c", script], environment=environment, remove=True, stdout=True, stderr=True
    )
    return output.decode()


def _copy_kernel(tmp_path: Path, name: str, **metadata_changes: Any) -> Path:
    kernel = Path(shutil.copytree(EXAMPLE_KERNEL, tmp_path / name))
    metadata_file = kernel / "model_metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata.update(metadata_changes)
    metadata_file.write_text(json.dumps(metadata, indent=2))
    return kernel


@pytest.fixture(scope="session")
def iris_image(engine: Any, level1: BuiltImage, built_test_images: list[str]) -> dict[str, Any]:
    """The iris example built through the CLI, as a data scientist (or CI) would."""
    tag = f"{TEST_TAG_PREFIX}iris-classifier:0.1.0"
    built_test_images.append(tag)
    result = _shim(
        "image", "build", str(EXAMPLE_KERNEL), "--runtime-image", level1.tag, "--tag", tag,
        "--network", BUILD_NETWORK, "--json",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "shim validate /kernel" in result.stderr  # the build output streamed live to stderr
    report = json.loads(result.stdout)
    BUILD_SECONDS["level 2"] = report["seconds"]
    return report


# -- Level 0 -----------------------------------------------------------------------------------


def test_level0_is_a_hardened_non_root_base_trusting_our_ca(engine: Any, level0: BuiltImage) -> None:
    labels = level0.labels
    assert labels["dev.kernelshim.level"] == "0"
    assert labels["org.opencontainers.image.base.name"] == "localhost/kernelshim/debian-base:bookworm"
    assert labels["org.opencontainers.image.title"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert engine.images.get(level0.tag).attrs["Config"]["User"] == KERNEL_USER

    trusted = (
        "import os, ssl; store = ''.join(open(ssl.get_default_verify_paths().cafile).read().split()); "
        "print('ca-trusted' if os.environ['TEST_CA'] in store else 'ca-missing')"
    )
    output = _run(engine, level0.tag, (
        "id -u; command -v python; "
        "touch /opt/venv/probe 2>/dev/null && echo venv-writable || echo venv-read-only; "
        "echo setuid: $(find / -xdev -type f -perm /6000 2>/dev/null | wc -l); "
        f'python -c "{trusted}"'
    ), TEST_CA="".join(TEST_CA.read_text().split()))
    assert output.splitlines() == [
        "10001", "/opt/venv/bin/python", "venv-read-only", "setuid: 0", "ca-trusted",
    ], output


# -- Level 1 -----------------------------------------------------------------------------------


def test_level1_holds_exactly_the_policy_pins_and_kernelshim(engine: Any, level1: BuiltImage) -> None:
    labels = level1.labels
    assert labels["dev.kernelshim.level"] == "1"
    assert (labels["dev.kernelshim.runtime.variant"], labels["dev.kernelshim.runtime.torch"]) == ("cpu", "0")
    assert labels["dev.kernelshim.version"] == __version__
    assert labels["dev.kernelshim.runtime.frozen-digest"].startswith("sha256:")

    # the CPU variant: no torch, and onnxruntime rather than onnxruntime-gpu
    gpu_only = {"torch", "onnxruntime-gpu"}
    pins = {k: v for k, v in load_policies().dependency["runtime_packages"].items() if k not in gpu_only}
    assert set(pins) >= GRPC_PACKAGES  # the runtime freezes the gRPC endpoint's packages too
    script = (
        "import json, importlib.metadata as m, importlib.util as u; "
        f"print(json.dumps({{'versions': {{n: m.version(n) for n in {sorted(pins)!r}}}, "
        "'torch': u.find_spec('torch') is not None, 'kernelshim': m.version('kernelshim')}))"
    )
    output = _run(engine, level1.tag, f"python -c \"{script}\"; cat /opt/kernelshim/constraints.txt; id -u")
    lines = output.splitlines()
    report = json.loads(lines[0])
    assert report["versions"] == pins
    assert report["torch"] is False and report["kernelshim"] == __version__
    assert f"onnxruntime=={pins['onnxruntime']}" in lines and f"numpy=={pins['numpy']}" in lines
    assert lines[-1] == "10001"


# -- Level 2: the acceptance path --------------------------------------------------------------


def _healthcheck(engine: Any, image: str) -> dict[str, Any]:
    """The image's HEALTHCHECK. Podman 4.3's Docker-compatible inspect leaves it out of Config
    (the image has it: `podman image inspect` shows it), so ask podman itself there."""
    healthcheck = engine.images.get(image).attrs["Config"].get("Healthcheck")
    if healthcheck is None and shutil.which("podman"):
        native = subprocess.run(
            ["podman", "image", "inspect", image], capture_output=True, text=True, check=True
        )
        healthcheck = json.loads(native.stdout)[0].get("Healthcheck")  # top level in podman's own inspect
    assert healthcheck, f"{image} has no HEALTHCHECK"
    return healthcheck


@contextlib.contextmanager
def _serving(engine: Any, image: str) -> Iterator[tuple[Any, str, str]]:
    """A running container of ``image`` with REST and gRPC published on loopback: (container,
    REST base URL, gRPC host:port)."""
    published = ("127.0.0.1", None)
    container = engine.containers.run(image, detach=True, ports={REST_PORT: published, GRPC_PORT: published})
    try:
        container.reload()
        ports = container.attrs["NetworkSettings"]["Ports"]
        rest, grpc = (ports[name][0]["HostPort"] for name in (REST_PORT, GRPC_PORT))
        yield container, f"http://127.0.0.1:{rest}", f"127.0.0.1:{grpc}"
    except BaseException:
        print(container.logs().decode(errors="replace")[-4000:])
        raise
    finally:
        container.remove(force=True)


def _wait_ready(base_url: str, container: Any) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc
        container.reload()
        assert container.status == "running", container.logs().decode(errors="replace")[-4000:]
        time.sleep(0.5)
    pytest.fail(f"not ready after {READY_TIMEOUT_S} s: {last}")


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def _check_grpc(address: str, sample: dict[str, Any]) -> None:
    """The container's gRPC endpoint: health SERVING, ready, and the golden sample's answer."""
    import grpc
    import tritonclient.grpc as triton_grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from shim.spec.datatypes import DATATYPES

    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        check = health.Check(health_pb2.HealthCheckRequest(), timeout=15, wait_for_ready=True)
    assert check.status == health_pb2.HealthCheckResponse.SERVING

    client = triton_grpc.InferenceServerClient(address)
    try:
        assert client.is_server_ready() and client.is_model_ready("iris-classifier")
        inputs = []
        for tensor in sample["request"]["inputs"]:
            dtype = DATATYPES[tensor["datatype"]].numpy
            array = np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
            infer_input = triton_grpc.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
            infer_input.set_data_from_numpy(array)
            inputs.append(infer_input)
        result = client.infer("iris-classifier", inputs)
        for expected in sample["expected"]["outputs"]:
            actual = result.as_numpy(expected["name"])
            assert list(actual.shape) == expected["shape"]
            np.testing.assert_allclose(actual.ravel(), expected["data"], atol=1e-5, rtol=1e-4)
    finally:
        client.close()


def test_kernel_image_serves_a_correct_inference_as_non_root(engine: Any, iris_image: dict[str, Any]) -> None:
    labels = iris_image["labels"]
    assert labels["dev.kernelshim.level"] == "2"
    assert labels["dev.kernelshim.kernel.name"] == "iris-classifier"
    assert labels["dev.kernelshim.kernel.version"] == "0.1.0"
    assert labels["dev.kernelshim.kernel.digest"] == kernel_digest(EXAMPLE_KERNEL)
    assert labels["org.opencontainers.image.base.name"] == LEVEL1_TAG
    config = engine.images.get(iris_image["tag"]).attrs["Config"]
    assert config["User"] == KERNEL_USER
    assert config["Cmd"] == ["shim", "serve", "/kernel"]
    assert {REST_PORT, GRPC_PORT} <= set(config["ExposedPorts"])  # REST and KServe's gRPC port
    assert {"KERNELSHIM_PORT=8080", "KERNELSHIM_GRPC_PORT=8081"} <= set(config["Env"])
    healthcheck = _healthcheck(engine, iris_image["tag"])
    assert healthcheck["Test"][0] == "CMD" and "/health" in " ".join(healthcheck["Test"])

    sample = json.loads((EXAMPLE_KERNEL / "samples" / "example.json").read_text())
    with _serving(engine, iris_image["tag"]) as (container, base_url, grpc_address):
        _wait_ready(base_url, container)
        reply = _post(f"{base_url}/v2/models/iris-classifier/infer", sample["request"])
        outputs = {output["name"]: output for output in reply["outputs"]}
        for expected in sample["expected"]["outputs"]:
            actual = outputs[expected["name"]]
            assert (actual["datatype"], actual["shape"]) == (expected["datatype"], expected["shape"])
            np.testing.assert_allclose(actual["data"], expected["data"], atol=1e-5, rtol=1e-4)
        _check_grpc(grpc_address, sample)  # the same answer over the Open Inference Protocol's gRPC

        server_uid = container.exec_run(["sh", "-c", "awk '/^Uid:/ {print $2}' /proc/1/status"]).output
        assert server_uid.decode().strip() == "10001"  # the server itself (PID 1) is not root
        health = container.exec_run(healthcheck["Test"][1:])
        assert health.exit_code == 0, health.output
        tamper = container.exec_run(["sh", "-c", "echo x >> /kernel/model.onnx"])
        assert tamper.exit_code != 0  # the kernel is read-only for the serving user


def test_invalid_kernel_fails_the_build_with_the_validators_finding(
    engine: Any, level1: BuiltImage, tmp_path: Path
) -> None:
    from docker.errors import ImageNotFound

    kernel = _copy_kernel(tmp_path, "wrong-datatype")
    metadata = json.loads((kernel / "model_metadata.json").read_text())
    metadata["outputs"][0]["datatype"] = "FP32"  # the model's 'label' is INT64: schema-valid, model-invalid
    (kernel / "model_metadata.json").write_text(json.dumps(metadata, indent=2))
    tag = f"{TEST_TAG_PREFIX}invalid-kernel:0.1.0"

    result = _shim("image", "build", str(kernel), "--runtime-image", level1.tag, "--tag", tag,
                   "--network", BUILD_NETWORK)
    assert result.returncode == 1
    assert "KS203 'label' is declared FP32 but the model's element type is INT64" in result.stderr
    assert "kernel rejected: fix the findings above" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(ImageNotFound):
        engine.images.get(tag)


def test_changing_only_the_kernel_rebuilds_only_level2(
    engine: Any, level0: BuiltImage, level1: BuiltImage, iris_image: dict[str, Any], ca_bundle: Path,
    built_test_images: list[str], tmp_path: Path,
) -> None:
    kernel = _copy_kernel(tmp_path, "iris-v2", version="0.2.0", description="Retrained on more flowers.")
    tag = f"{TEST_TAG_PREFIX}iris-classifier:0.2.0"
    built_test_images.append(tag)
    retagged = build_kernel(engine, kernel, level1.tag, tag=tag, network_mode=BUILD_NETWORK)
    BUILD_SECONDS["level 2 after a kernel change"] = retagged.seconds

    # The platform's pipeline re-running Level 0 and 1 with unchanged inputs gets the same images.
    again0 = build_base(engine, BaseBuildOptions(
        level=0, tag=LEVEL0_TAG, base_image=level0.labels["org.opencontainers.image.base.name"],
        ca_bundles=(ca_bundle,), network_mode=BUILD_NETWORK,
    ))
    again1 = build_base(engine, BaseBuildOptions(
        level=1, tag=LEVEL1_TAG, base_image=LEVEL0_TAG, variant="cpu", install_torch=False, source=REPO,
        network_mode=BUILD_NETWORK,
    ))
    assert (again0.image_id, again1.image_id) == (level0.image_id, level1.image_id)
    current = (engine.images.get(LEVEL0_TAG).id, engine.images.get(LEVEL1_TAG).id)
    assert current == (level0.image_id, level1.image_id)

    assert retagged.image_id != iris_image["image_id"]
    assert retagged.labels["dev.kernelshim.kernel.version"] == "0.2.0"
    assert retagged.labels["dev.kernelshim.kernel.digest"] == kernel_digest(kernel)
    assert kernel_digest(kernel) != kernel_digest(EXAMPLE_KERNEL)
    runtime_layers = engine.images.get(LEVEL1_TAG).attrs["RootFS"]["Layers"]
    kernel_layers = engine.images.get(tag).attrs["RootFS"]["Layers"]
    assert kernel_layers[: len(runtime_layers)] == runtime_layers  # built on Level 1, not rebuilding it


def test_same_kernel_anywhere_gives_the_same_digest_and_image(
    engine: Any, level1: BuiltImage, iris_image: dict[str, Any], built_test_images: list[str], tmp_path: Path
) -> None:
    kernel = Path(shutil.copytree(EXAMPLE_KERNEL, tmp_path / "elsewhere"))
    for path in kernel.rglob("*"):
        os.utime(path, (1_234_567_890, 1_234_567_890))
        if path.is_file():
            path.chmod(0o600)
    tag = f"{TEST_TAG_PREFIX}iris-classifier:copy"
    built_test_images.append(tag)
    rebuilt = build_kernel(engine, kernel, level1.tag, tag=tag, network_mode=BUILD_NETWORK)
    digest_label = "dev.kernelshim.kernel.digest"
    assert rebuilt.labels[digest_label] == iris_image["labels"][digest_label]
    assert rebuilt.image_id == iris_image["image_id"]


def test_kernel_requirements_install_but_cannot_move_a_frozen_pin(
    engine: Any, level1: BuiltImage, built_test_images: list[str], tmp_path: Path
) -> None:
    kernel = _copy_kernel(tmp_path, "with-requirements")
    (kernel / "requirements.txt").write_text("six==1.16.0\n")
    tag = f"{TEST_TAG_PREFIX}with-requirements:0.1.0"
    built_test_images.append(tag)
    built = build_kernel(engine, kernel, level1.tag, tag=tag, network_mode=BUILD_NETWORK)
    assert _run(engine, built.tag, "python -c 'import six; print(six.__version__)'").strip() == "1.16.0"

    greedy = _copy_kernel(tmp_path, "moves-numpy")
    (greedy / "requirements.txt").write_text("numpy==2.0.0\n")
    with pytest.raises(BuildFailed) as failure:
        build_kernel(engine, greedy, level1.tag, tag=f"{TEST_TAG_PREFIX}moves-numpy:0.1.0",
                     network_mode=BUILD_NETWORK)
    log = "".join(failure.value.output)
    frozen_numpy = load_policies().dependency["runtime_packages"]["numpy"]
    assert "numpy==2.0.0" in log and f"numpy=={frozen_numpy}" in log  # pip names both sides of the conflict


def test_torchscript_kernel_is_refused_on_a_runtime_without_torch(engine: Any, level1: BuiltImage) -> None:
    with pytest.raises(RuntimeMismatch, match=r"TorchScript, but runtime .* was built without torch"):
        build_kernel(engine, REPO / "examples" / "kernels" / "torchscript-mlp", level1.tag,
                     tag=f"{TEST_TAG_PREFIX}never-built:0", network_mode=BUILD_NETWORK)


def test_a_level0_image_is_refused_as_runtime(engine: Any, level0: BuiltImage) -> None:
    with pytest.raises(RuntimeMismatch, match="is a level-0 image"):
        build_kernel(engine, EXAMPLE_KERNEL, level0.tag, tag=f"{TEST_TAG_PREFIX}never-built:0")


def test_push_to_an_unreachable_registry_fails_clearly(engine: Any, iris_image: dict[str, Any]) -> None:
    from shim.images.builder import push_image

    repository = "127.0.0.1:9/kernelshim-test/iris-classifier"  # port 9 (discard): nothing listens
    target = f"{repository}:push"
    engine.images.get(iris_image["tag"]).tag(repository, "push")
    try:
        with pytest.raises(BuildFailed, match=rf"pushing {re.escape(target)} failed"):
            push_image(engine, target)
    finally:
        with contextlib.suppress(Exception):
            engine.images.remove(target)
