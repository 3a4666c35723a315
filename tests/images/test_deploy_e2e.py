"""`shim deploy` end to end: a real kernel, a real image build (podman), a real registry on
localhost (Debian's docker-registry, started here with a temporary config), real Terraform.

The environment is terraform/examples/local-stand-in (copied to a temp dir): it takes the k8s
module's variables but manages no resources, because the real modules need providers this machine
cannot download; the deploy says so in its report. One deploy pushes, resolves and applies; the
same kernel into the same registry under the shipped policy (which does not allow a localhost
registry) stops at the gate with the violation printed and applies nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .conftest import BUILD_NETWORK, EXAMPLE_KERNEL, REPO, skip_or_fail

STAND_IN = REPO / "terraform" / "examples" / "local-stand-in"
REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a docker-registry serving from a temp dir (not the system service)."""
    binary = shutil.which("docker-registry")
    if binary is None:
        skip_or_fail("docker-registry is not installed (`bash .ci/install-registry.sh` installs Debian's)")
    root = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = root / "config.yml"
    config.write_text(REGISTRY_CONFIG.format(root=root / "data", port=port), encoding="utf-8")
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            skip_or_fail(f"docker-registry did not start: {(root / 'registry.log').read_text()[-500:]}")
        time.sleep(0.2)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def environment(tmp_path: Path, registry: str, level1) -> Path:
    """The stand-in environment pointed at the test registry and the test's Level-1 runtime."""
    env = tmp_path / "env"
    shutil.copytree(STAND_IN, env)
    settings = json.loads((env / "deploy.json").read_text())
    settings.update(registry=f"{registry}/models", runtime_image=level1.tag, build_network=BUILD_NETWORK)
    (env / "deploy.json").write_text(json.dumps(settings), encoding="utf-8")
    return env


def allow_local_registry(tmp_path: Path, registry: str) -> Path:
    """The shipped plan policy plus this registry: what an Ops team's environment policy would say."""
    policies = tmp_path / "policies"
    policies.mkdir()
    shipped = yaml.safe_load((REPO / "policies" / "plan_policy.yaml").read_text())
    shipped["allowed_image_sources"].append(f"{registry}/models/*")
    (policies / "plan_policy.yaml").write_text(yaml.safe_dump(shipped), encoding="utf-8")
    return policies


def deploy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shim.cli.main", "deploy", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.containers
@pytest.mark.terraform
def test_deploy_pushes_pins_the_digest_and_applies_only_what_the_gate_passed(
    environment, registry, tmp_path, built_test_images
):
    if shutil.which("terraform") is None and shutil.which("tofu") is None:
        skip_or_fail("no terraform binary (`bash .ci/install-terraform.sh`)")
    kernel = tmp_path / "iris-classifier"
    shutil.copytree(EXAMPLE_KERNEL, kernel)
    built_test_images.append(f"{registry}/models/iris-classifier:0.1.0")

    # 1. The shipped policy does not allow a localhost registry: the gate stops it before apply.
    refused = deploy(str(kernel), "--env", str(environment), "--approve", "--quiet")
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert "stage gate failed" in refused.stderr
    assert "KS606" in refused.stdout and "var.image" in refused.stdout, refused.stdout
    assert "Applied: no" in refused.stdout
    assert not (environment / "terraform.tfstate").exists(), "the refused plan was applied"
    for stage in ("validate", "build", "push", "resolve", "tfvars", "plan", "gate"):
        assert f"] {stage}" in refused.stderr, f"no progress line for {stage}"
    assert "] apply" not in refused.stderr

    # 2. With the environment's policy allowing the registry: pushed, pinned, gated, applied.
    policies = allow_local_registry(tmp_path, registry)
    done = deploy(
        str(kernel),
        "--env",
        str(environment),
        "--approve",
        "--quiet",
        "--policy-dir",
        str(policies),
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    digest = report["digest"]
    assert report["image"] == f"{registry}/models/iris-classifier@{digest}"
    assert report["digest_source"] == "registry"
    # The digest is the one the registry serves for the pushed tag.
    request = urllib.request.Request(
        f"http://{registry}/v2/models/iris-classifier/manifests/0.1.0",
        method="HEAD",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Docker-Content-Digest"] == digest
    tfvars = json.loads(Path(report["tfvars_file"]).read_text())
    assert tfvars["image"] == report["image"] and tfvars["model_name"] == "iris-classifier"
    assert report["gate"] == {"passed": True, "violations": []}
    assert report["applied"] is True
    assert report["outputs"]["image"] == report["image"]
    assert report["outputs"]["endpoint"]["image_pinned"] is True
    assert any("need the hashicorp/kubernetes provider" in note for note in report["notes"]), report["notes"]
    assert [s["stage"] for s in report["stages"]] == [
        "validate",
        "build",
        "push",
        "resolve",
        "tfvars",
        "plan",
        "gate",
        "apply",
        "outputs",
    ]
    assert (environment / "terraform.tfstate").is_file()

    # 3. --dry-run stops after the gate even when it passes (the image is rebuilt from cache).
    dry = deploy(
        str(kernel), "--env", str(environment), "--dry-run", "--quiet", "--policy-dir", str(policies)
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Applied: no" in dry.stdout and "dry run" in dry.stdout
    assert "] apply" not in dry.stderr


@pytest.mark.containers
def test_image_build_pushes_to_a_plain_http_registry(registry, level1, tmp_path, built_test_images):
    """`shim image build --push --no-tls-verify`: the same push the deploy uses, from the CLI."""
    tag = f"{registry}/models/iris-classifier:cli"
    built_test_images.append(tag)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shim.cli.main",
            "image",
            "build",
            str(EXAMPLE_KERNEL),
            "--runtime-image",
            level1.tag,
            "--tag",
            tag,
            "--push",
            "--no-tls-verify",
            "--network",
            BUILD_NETWORK,
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with urllib.request.urlopen(
        f"http://{registry}/v2/models/iris-classifier/tags/list", timeout=10
    ) as answer:
        assert "cli" in json.loads(answer.read())["tags"]
