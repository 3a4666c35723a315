"""`shim deploy` without a container engine: the environment file, the stages that fail before any
build, the stand-in environment's agreement with the k8s module, and digest resolution.

The full pipeline (build, push to a real registry, plan, gate, apply) runs in
tests/images/test_deploy_e2e.py.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from shim.deploy.environment import DeployEnvError, image_tag, load_environment
from shim.iac.hcl_module import module_dir, read_variables
from shim.images.registry import DigestUnresolved, pushed_digest, resolve_digest, split_reference

from .conftest import DIGEST, REPO, shim

STAND_IN = REPO / "terraform" / "examples" / "local-stand-in"
KERNEL = REPO / "examples" / "kernels" / "iris-classifier"


def env_dir(tmp_path: Path, **settings) -> Path:
    env = tmp_path / "env"
    shutil.copytree(STAND_IN, env)
    data = json.loads((env / "deploy.json").read_text())
    for key, value in settings.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    (env / "deploy.json").write_text(json.dumps(data))
    return env


def test_the_stand_in_takes_exactly_the_k8s_modules_contract_variables():
    module = {n for n, v in read_variables(module_dir("k8s")).items() if v.from_contract}
    assert set(read_variables(STAND_IN)) == module


def test_the_environment_file_is_read(tmp_path):
    env = load_environment(env_dir(tmp_path))
    assert (env.module, env.registry, env.tls_verify) == ("k8s", "localhost:5000/models", False)
    assert image_tag(env.registry, "iris", "1.0.0+build.7") == "localhost:5000/models/iris:1.0.0_build.7"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"module": "gke"}, "$.module"),
        ({"registry": "UPPER CASE/x"}, "$.registry"),
        ({"runtime_image": None}, "'runtime_image' is a required property"),
        ({"extra": 1}, "Additional properties are not allowed"),
        ({"policy_dir": "nowhere"}, "$.policy_dir: nowhere is not a directory"),
    ],
)
def test_a_bad_environment_file_names_the_field(tmp_path, settings, message):
    with pytest.raises(DeployEnvError, match=None) as caught:
        load_environment(env_dir(tmp_path, **settings))
    assert "deploy.json" in str(caught.value) and message in str(caught.value), caught.value


def test_a_directory_without_terraform_or_deploy_json_is_refused(tmp_path):
    with pytest.raises(DeployEnvError, match="no Terraform root configuration"):
        load_environment(tmp_path)
    (tmp_path / "main.tf").write_text("")
    with pytest.raises(DeployEnvError, match=r"deploy\.json: missing"):
        load_environment(tmp_path)
    (tmp_path / "deploy.json").write_text('{"env_version": "1", "env_version": "1"}')
    with pytest.raises(DeployEnvError, match="not valid JSON"):
        load_environment(tmp_path)


def test_cli_needs_approve_or_dry_run_without_a_terminal(tmp_path):
    result = shim("deploy", str(KERNEL), "--env", str(env_dir(tmp_path)))
    assert result.returncode == 2 and "pass --approve" in result.stderr


def test_cli_bad_environment_is_one_line_exit_2(tmp_path):
    result = shim("deploy", str(KERNEL), "--env", str(tmp_path / "nope"), "--dry-run")
    assert result.returncode == 2 and "no such environment directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_invalid_kernel_stops_at_validate_and_builds_nothing(tmp_path):
    kernel = tmp_path / "kernel"
    shutil.copytree(KERNEL, kernel)
    metadata = json.loads((kernel / "model_metadata.json").read_text())
    del metadata["cost_center"]
    (kernel / "model_metadata.json").write_text(json.dumps(metadata))
    result = shim(
        "deploy",
        str(kernel),
        "--env",
        str(env_dir(tmp_path)),
        "--dry-run",
        env={"DOCKER_HOST": "unix:///nonexistent.sock"},
    )
    assert result.returncode == 1, result.stderr
    assert "stage validate failed" in result.stderr and "cost_center" in result.stderr
    assert "] build" not in result.stderr and "Applied: no" in result.stdout


def test_no_engine_fails_the_build_stage_by_name(tmp_path):
    result = shim(
        "deploy",
        str(KERNEL),
        "--env",
        str(env_dir(tmp_path)),
        "--dry-run",
        env={"DOCKER_HOST": "unix:///nonexistent.sock"},
    )
    assert result.returncode == 3, result.stderr
    assert "[1/9] validate" in result.stderr
    assert "stage build failed: no container engine answers" in result.stderr
    assert not (tmp_path / "env" / ".terraform").exists()


# --- digest resolution -------------------------------------------------------------------------


def test_split_reference():
    assert split_reference("localhost:5000/models/iris:0.1.0") == ("localhost:5000", "models/iris", "0.1.0")
    assert split_reference("registry.example.com/m/x") == ("registry.example.com", "m/x", "latest")
    with pytest.raises(DigestUnresolved, match="names no registry host"):
        split_reference("library/iris:1")


def test_the_engine_reported_digest_is_the_fallback():
    output = ["The push refers to repository [x]\n", f"0.1.0: digest: {DIGEST} size: 345\n"]
    assert pushed_digest(output) == DIGEST
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    resolved = resolve_digest(f"127.0.0.1:{port}/models/iris:0.1.0", output, tls_verify=False)
    assert (resolved.digest, resolved.source) == (DIGEST, "engine")
    assert "could not be reached" in resolved.note
    with pytest.raises(DigestUnresolved, match="push output names none"):
        resolve_digest(f"127.0.0.1:{port}/models/iris:0.1.0", ["nothing useful\n"], tls_verify=False)


# --- the Terraform half of the pipeline on the stand-in root, with a real terraform --------------


def deployer(tmp_path, terraform_log, policy_dir=None, **options):
    from shim.deploy.pipeline import Deployer, DeployOptions

    lines: list[str] = []
    env = load_environment(env_dir(tmp_path))
    confirm = options.pop("confirm", lambda _summary: False)
    return Deployer(
        KERNEL,
        env,
        DeployOptions(policy_dir=policy_dir, **options),
        progress=lines.append,
        confirm=confirm,
        terraform_log=terraform_log,
    ), lines


def allowing_localhost(tmp_path: Path) -> Path:
    import yaml

    policies = tmp_path / "policies"
    policies.mkdir()
    policy = yaml.safe_load((REPO / "policies" / "plan_policy.yaml").read_text())
    policy["allowed_image_sources"].append("localhost:5000/*")
    (policies / "plan_policy.yaml").write_text(yaml.safe_dump(policy))
    return policies


LOCAL_IMAGE = f"localhost:5000/models/iris-classifier@{DIGEST}"


@pytest.mark.terraform
@pytest.mark.parametrize("answer", [False, True])
def test_apply_happens_only_on_approval(terraform, tmp_path, answer):
    from shim.contract.kernel import read_kernel

    asked: list[str] = []

    def confirm(summary: str) -> bool:
        asked.append(summary)
        return answer

    with (tmp_path / "terraform.log").open("w") as log:
        run, lines = deployer(tmp_path, log, allowing_localhost(tmp_path), confirm=confirm)
        result = run.release(read_kernel(KERNEL), LOCAL_IMAGE)
    assert asked and "Policy gate: passed" in asked[0]
    assert result.applied is answer
    assert (tmp_path / "env" / "terraform.tfstate").exists() is answer
    assert json.loads(result.tfvars_file.read_text())["image"] == LOCAL_IMAGE
    if answer:
        assert result.outputs["image"] == LOCAL_IMAGE
        assert any(line.startswith("[8/9] apply") for line in lines)
    else:
        assert "not approved: nothing was applied" in result.notes


@pytest.mark.terraform
def test_a_gate_violation_stops_before_apply(terraform, tmp_path):
    from shim.contract.kernel import read_kernel
    from shim.deploy.pipeline import DeployFailed

    with (tmp_path / "terraform.log").open("w") as log:
        run, lines = deployer(tmp_path, log, allowing_localhost(tmp_path), approve=True)
        run.result.digest = "sha256:" + "00" * 32  # the deploy built another image than the tfvars name
        with pytest.raises(DeployFailed) as failed:
            run.release(read_kernel(KERNEL), LOCAL_IMAGE)
    assert failed.value.stage == "gate" and failed.value.exit_code == 1
    assert any("KS612" in v and "var.image" in v for v in failed.value.details)
    assert not (tmp_path / "env" / "terraform.tfstate").exists()
    assert not any(line.startswith("[8/9] apply") for line in lines)


@pytest.mark.terraform
def test_a_terraform_failure_names_the_plan_stage(terraform, tmp_path):
    from shim.contract.kernel import read_kernel
    from shim.deploy.pipeline import DeployFailed

    with (tmp_path / "terraform.log").open("w") as log:
        run, _ = deployer(tmp_path, log, allowing_localhost(tmp_path), approve=True)
        (tmp_path / "env" / "broken.tf").write_text('output "x" { value = var.not_declared }\n')
        with pytest.raises(DeployFailed) as failed:
            run.release(read_kernel(KERNEL), LOCAL_IMAGE)
    assert failed.value.stage == "plan" and "nothing was applied" in failed.value.reason
    assert not (tmp_path / "env" / "terraform.tfstate").exists()
