"""`shim tf plan|apply`: init -> plan -out -> show -json -> gate -> apply, with a real terraform/tofu."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from shim.iac.plan_gate import PlanGate
from shim.iac.plan_policy import load_plan_policy
from shim.iac.runner import PLAN_DIR, PlanChangedError, TerraformRunner

from .conftest import ECR_IMAGE, EXAMPLES, FIXTURES, IMAGE, missing_tool, shim

pytestmark = pytest.mark.terraform


def copy_root(name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / "roots" / name, root)
    return root


def state(terraform, root: Path) -> dict:
    out = subprocess.run(
        [str(terraform.path), "show", "-json"], cwd=root, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_apply_runs_every_step_on_a_provider_free_root(terraform, tmp_path):
    root = copy_root("provider_free", tmp_path)
    result = shim("tf", "apply", str(root))
    assert result.returncode == 0, result.stderr
    for step in ("init -input=false", "plan -input=false", "show -json", "apply -input=false"):
        assert f"{terraform.name} {step}" in result.stderr
    assert "Policy gate: passed" in result.stdout
    assert (root / PLAN_DIR / "plan.tfplan").is_file() and (root / PLAN_DIR / "plan.json").is_file()
    outputs = state(terraform, root)["values"]["outputs"]
    assert outputs["endpoint"]["value"] == "http://iris-classifier.models.svc.cluster.local#1"


def test_plan_alone_does_not_apply(terraform, tmp_path):
    root = copy_root("provider_free", tmp_path)
    var_file = tmp_path / "gen.tfvars.json"
    var_file.write_text(json.dumps({"generation": 7}), encoding="utf-8")
    result = shim("tf", "plan", str(root), "--var-file", str(var_file), "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True and report["format_version"].split(".")[0] in ("0", "1")
    assert not (root / "terraform.tfstate").exists()  # plan never writes state


def test_terraform_errors_are_reported_not_raised(terraform, tmp_path):
    root = copy_root("provider_free", tmp_path)
    var_file = tmp_path / "bad.tfvars.json"
    var_file.write_text(json.dumps({"model_name": "Not A DNS Label"}), encoding="utf-8")
    result = shim("tf", "apply", str(root), "--var-file", str(var_file))
    assert result.returncode == 3
    assert "must be a DNS-1123 label" in result.stderr
    assert "plan -input=false -no-color" in result.stderr and "failed with exit code 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_binary_is_a_clear_error(tmp_path):
    root = copy_root("provider_free", tmp_path)
    result = shim("tf", "plan", str(root), env={"PATH": str(tmp_path), "KERNELSHIM_TERRAFORM": ""})
    assert result.returncode == 2
    assert "neither `terraform` nor `tofu` is on PATH" in result.stderr


def test_a_plan_changed_after_the_gate_is_not_applied(terraform, tmp_path):
    root = copy_root("provider_free", tmp_path)
    runner = TerraformRunner(terraform, root, log=open(os.devnull, "w"))  # noqa: SIM115
    gated = runner.plan_and_gate(PlanGate(load_plan_policy()))
    assert gated.result.ok
    gated.plan_file.write_bytes(gated.plan_file.read_bytes() + b"\0")
    with pytest.raises(PlanChangedError, match="changed after it was gated"):
        runner.apply_gated(gated)
    assert "outputs" not in state(terraform, root).get("values", {})


@pytest.fixture
def protect_terraform_data(tmp_path) -> Path:
    """A plan policy that treats terraform_data as an endpoint (it stands in for one)."""
    policy = yaml.safe_load(load_plan_policy().source.read_text(encoding="utf-8"))
    policy["protected_resources"].append({"type": "terraform_data"})
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    (policy_dir / "plan_policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    return policy_dir


def test_apply_is_refused_when_the_gate_fails(terraform, tmp_path, protect_terraform_data):
    if terraform.version_tuple < (1, 4):
        pytest.skip(f"terraform_data needs Terraform >= 1.4; this is {terraform.name} {terraform.version}")
    root = copy_root("terraform_data", tmp_path)
    policy = ["--policy-dir", str(protect_terraform_data)]
    first = tmp_path / "first.tfvars.json"
    first.write_text(json.dumps({"image": IMAGE}), encoding="utf-8")
    result = shim("tf", "apply", str(root), "--var-file", str(first), *policy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 to create" in result.stdout

    second = tmp_path / "second.tfvars.json"
    second.write_text(json.dumps({"image": IMAGE, "generation": 2}), encoding="utf-8")
    refused = shim("tf", "apply", str(root), "--var-file", str(second), *policy)
    assert refused.returncode == 1
    assert "KS601" in refused.stdout and "terraform_data.endpoint would be replaced" in refused.stdout
    assert "Not applying: the plan failed the policy gate." in refused.stderr
    assert f"{terraform.name} apply" not in refused.stderr
    resource = state(terraform, root)["values"]["root_module"]["resources"][0]
    assert resource["values"]["triggers_replace"] == [1]  # unchanged: nothing was applied

    allowed = shim("tf", "apply", str(root), "--var-file", str(second), *policy, "--allow-destroy")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    resource = state(terraform, root)["values"]["root_module"]["resources"][0]
    assert resource["values"]["triggers_replace"] == [2]


# --- with a real provider: the SageMaker example, planned offline from a local plugin mirror ---


def aws_plugin_dir() -> Path:
    """A provider mirror holding hashicorp/aws ($KERNELSHIM_TF_PLUGIN_DIR)."""
    configured = os.environ.get("KERNELSHIM_TF_PLUGIN_DIR")
    if configured and any(
        Path(configured).glob("registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws*")
    ):
        return Path(configured)
    pytest.skip(
        "needs the hashicorp/aws provider in a local mirror: set KERNELSHIM_TF_PLUGIN_DIR "
        "(e.g. a directory with registry.terraform.io/hashicorp/aws/<version>/linux_amd64/)"
    )


OFFLINE_PROVIDER = """
provider "aws" {
  access_key                  = "offline"
  secret_key                  = "offline"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("instance_type", "gpu", "expected_rc"), [("ml.m5.large", 0, 0), ("ml.g5.12xlarge", 1, 1)]
)
def test_sagemaker_example_plans_and_gates_with_the_real_provider(
    terraform, make_kernel, tmp_path, instance_type, gpu, expected_rc
):
    plugin_dir = aws_plugin_dir()
    if terraform.version_tuple < (1, 3):
        pytest.skip(f"the modules need Terraform >= 1.3; this is {terraform.version}")
    terraform_copy = tmp_path / "terraform"
    shutil.copytree(
        EXAMPLES.parent, terraform_copy, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*")
    )
    root = terraform_copy / "examples" / "sagemaker-model-endpoint"
    kernel = make_kernel(resources={"gpu": gpu})
    tfvars = shim("tf", "vars", str(kernel), "--image", ECR_IMAGE, "--module", "sagemaker")
    assert tfvars.returncode == 0, tfvars.stderr
    (root / "endpoint.auto.tfvars.json").write_text(tfvars.stdout, encoding="utf-8")
    platform = (root / "platform.auto.tfvars.example").read_text(encoding="utf-8")
    (root / "platform.auto.tfvars").write_text(platform.replace('"ml.m5.large"', f'"{instance_type}"'))
    (root / "offline_override.tf").write_text(OFFLINE_PROVIDER, encoding="utf-8")
    result = shim(
        "tf", "plan", str(root), "--plugin-dir", str(plugin_dir), env={"TF_CLI_CONFIG_FILE": os.devnull}
    )
    if result.returncode == 3 and "no such host" in result.stderr:
        missing_tool("the aws provider tried to reach AWS despite the offline settings")
    assert result.returncode == expected_rc, result.stdout + result.stderr
    assert "9 to create" in result.stdout
    if expected_rc == 0:
        assert "Policy gate: passed" in result.stdout
    else:  # 4 GPUs per ml.g5.12xlarge x max_capacity 4 = 16
        assert "KS604" in result.stdout and "16 GPUs" in result.stdout
