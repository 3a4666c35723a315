"""CDK Terrain: `SecureModelEndpoint` and `shim tf synth` (needs cdktn and Node)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from shim.contract.kernel import read_kernel
from shim.iac.hcl_module import module_dir
from shim.iac.tfvars import tfvars_for

pytest.importorskip("cdktn", reason="CDK Terrain is not installed (pip install 'kernelshim[iac]')")
if shutil.which("node") is None:
    pytest.skip("CDK Terrain needs Node.js on PATH", allow_module_level=True)

from shim.iac.construct import ConstructInputError
from shim.iac.synth import synth_endpoint

from .conftest import ECR_IMAGE, IMAGE, missing_tool, shim


def module_call(stack_file: Path) -> dict:
    (call,) = json.loads(stack_file.read_text(encoding="utf-8"))["module"].values()
    return call


def test_cli_synth_calls_the_module_with_the_contract_values(make_kernel, tmp_path):
    kernel = make_kernel()
    result = shim("tf", "synth", str(kernel), "--image", IMAGE, "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    stack_file = Path(result.stdout.strip())
    assert stack_file == tmp_path / "out" / "stacks" / "iris-classifier" / "cdk.tf.json"
    call = module_call(stack_file)
    assert call.pop("source") == str(module_dir("k8s"))
    call.pop("//")
    expected = tfvars_for(read_kernel(kernel), IMAGE, "k8s")
    assert expected.pop("measured_memory_peak_bytes") is None  # null: the module's default, left out
    assert call == expected


def test_cli_synth_sagemaker_needs_the_platform_variables(make_kernel, tmp_path):
    kernel = make_kernel()
    result = shim(
        "tf",
        "synth",
        str(kernel),
        "--image",
        ECR_IMAGE,
        "--module",
        "sagemaker",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2
    assert "execution_role_arn is required" in result.stderr and "vpc_subnet_ids is required" in result.stderr
    platform = tmp_path / "platform.json"
    platform.write_text(
        json.dumps(
            {
                "execution_role_arn": "arn:aws:iam::123456789012:role/sagemaker-execution",
                "vpc_subnet_ids": ["subnet-0a1b2c3d", "subnet-0b1c2d3e"],
                "vpc_security_group_ids": ["sg-0c1d2e3f"],
            }
        )
    )
    result = shim(
        "tf",
        "synth",
        str(kernel),
        "--image",
        ECR_IMAGE,
        "--module",
        "sagemaker",
        "--platform-vars",
        str(platform),
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    assert module_call(Path(result.stdout.strip()))["vpc_subnet_ids"] == [
        "subnet-0a1b2c3d",
        "subnet-0b1c2d3e",
    ]


def valid_variables() -> dict:
    return {
        "model_name": "iris-classifier",
        "model_version": "0.1.0",
        "image": IMAGE,
        "cost_center": "cc-ml-4711",
        "data_classification": "internal",
    }


def test_missing_cost_center_fails_at_synth(tmp_path):
    variables = valid_variables()
    del variables["cost_center"]
    with pytest.raises(ConstructInputError) as info:
        synth_endpoint("k8s", variables, outdir=tmp_path / "out", stack_name="s")
    message = str(info.value)
    assert "cost_center is required and must not be empty" in message
    assert "[s/endpoint]" in message  # the construct path
    assert not (tmp_path / "out" / "stacks" / "s" / "cdk.tf.json").exists()


def test_every_bad_input_is_reported_at_synth(tmp_path):
    variables = {
        **valid_variables(),
        "cost_center": " ",
        "gpu": "2",
        "image": "registry.example.com/m/i:latest",
        "replicas": 3,
    }
    with pytest.raises(ConstructInputError) as info:
        synth_endpoint("k8s", variables, outdir=tmp_path / "out", stack_name="s")
    message = str(info.value)
    for expected in (
        "cost_center is required",
        "gpu: expected a number",
        "is not pinned by digest",
        "'replicas' is not a variable of the module",
    ):
        assert expected in message


@pytest.mark.terraform
def test_synthesized_json_is_accepted_by_terraform(terraform, make_kernel, tmp_path):
    """terraform plans the synthesized stack against a module made of the real variables.tf files:
    the module call's arguments and values pass Terraform's own checks and validations."""
    from shim.iac.construct import SecureModelEndpoint
    from shim.iac.synth import synth_app

    stub = tmp_path / "module"
    stub.mkdir()
    for name in ("variables.tf", "variables_platform.tf"):
        shutil.copy(module_dir("k8s") / name, stub / name)
    variables = tfvars_for(read_kernel(make_kernel()), IMAGE, "k8s")

    def build(app):
        from cdktn import TerraformStack

        SecureModelEndpoint(
            TerraformStack(app, "iris"), "endpoint", module="k8s", variables=variables, module_source=stub
        )

    synth_app(build, tmp_path / "out")
    stack_dir = tmp_path / "out" / "stacks" / "iris"
    run = dict(cwd=stack_dir, capture_output=True, text=True, timeout=300)
    init = subprocess.run([str(terraform.path), "init", "-input=false", "-no-color"], **run)
    if init.returncode != 0:
        missing_tool(f"terraform init failed on the synthesized stack: {init.stderr}")
    plan = subprocess.run([str(terraform.path), "plan", "-input=false", "-no-color"], **run)
    assert plan.returncode == 0, plan.stderr
