"""Rollouts and the KServe fixes of issue 14, read from the modules' HCL and evaluated by Terraform.

- KServe: the CPU target is spec.predictor.scaleMetric/scaleTarget (the annotations KServe ignores
  since 0.15 are gone), deploymentMode is Standard/Knative, canaryTrafficPercent is a validated
  variable, and a model name starting with a digit fails at plan time;
- plain Deployment: a rolling update that never lowers ready capacity;
- SageMaker: blue/green with CANARY/LINEAR traffic shifting and automatic rollback on the
  module's own 5xx and latency alarms.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shim.contract.kernel import read_kernel
from shim.iac.hcl_module import module_dir
from shim.iac.tfvars import tfvars_for

from .conftest import ECR_IMAGE, IMAGE
from .test_modules_hcl import hcl

K8S, SAGEMAKER = module_dir("k8s"), module_dir("sagemaker")
SAGEMAKER_PLATFORM = {
    "execution_role_arn": "arn:aws:iam::123456789012:role/sagemaker-execution",
    "vpc_subnet_ids": ["subnet-0a1b2c3d", "subnet-0b1c2d3e"],
    "vpc_security_group_ids": ["sg-0c1d2e3f"],
}


def resource(module: Path, file: str, kind: str, name: str) -> dict[str, Any]:
    for block in hcl(module / file)["resource"]:
        if kind in block and name in block[kind]:
            return block[kind][name]
    raise AssertionError(f"{file} has no {kind}.{name}")


def predictor() -> dict[str, Any]:
    return resource(K8S, "kserve.tf", "kubernetes_manifest", "inference_service")["manifest"]["spec"][
        "predictor"
    ]


# --- read from the HCL -------------------------------------------------------------------------


def test_kserve_cpu_target_uses_scale_metric_and_target_not_the_ignored_annotations():
    body = predictor()
    assert body["scaleMetric"] == "cpu"
    assert body["scaleTarget"] == "${var.target_cpu_utilization_percent}"
    metadata = resource(K8S, "kserve.tf", "kubernetes_manifest", "inference_service")["manifest"]["metadata"]
    annotations = str(metadata["annotations"])
    assert "serving.kserve.io/metric" not in annotations
    assert "targetUtilizationPercentage" not in annotations


def test_kserve_canary_is_written_only_below_100():
    assert body_canary() == (
        "${var.kserve_canary_traffic_percent < 100 ? var.kserve_canary_traffic_percent : null}"
    )


def body_canary() -> str:
    return predictor()["canaryTrafficPercent"]


def test_plain_deployment_never_reduces_ready_capacity():
    deployment = resource(K8S, "deployment.tf", "kubernetes_deployment_v1", "endpoint")
    (strategy,) = deployment["spec"][0]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    (rolling,) = strategy["rolling_update"]
    assert rolling["max_unavailable"] == "0" and rolling["max_surge"] != "0"
    assert deployment["wait_for_rollout"] is True


def test_sagemaker_blue_green_rolls_back_on_both_alarms():
    endpoint = resource(SAGEMAKER, "main.tf", "aws_sagemaker_endpoint", "this")
    (config,) = endpoint["deployment_config"]
    (rollback,) = config["auto_rollback_configuration"]
    alarms = {entry["alarm_name"] for entry in rollback["alarms"]}
    assert alarms == {
        "${aws_cloudwatch_metric_alarm.errors_5xx.alarm_name}",
        "${aws_cloudwatch_metric_alarm.latency_p99.alarm_name}",
    }
    (policy,) = config["blue_green_update_policy"]
    (routing,) = policy["traffic_routing_configuration"]
    assert routing["type"] == "${var.traffic_shift_mode}"
    steps = {name for entry in routing["dynamic"] for name in entry}
    assert steps == {"canary_size", "linear_step_size"}
    # The alarms must not depend on the endpoint that lists them (a cycle Terraform refuses).
    for name in ("errors_5xx", "latency_p99"):
        alarm = resource(SAGEMAKER, "alarms.tf", "aws_cloudwatch_metric_alarm", name)
        assert "aws_sagemaker_endpoint" not in json.dumps(alarm), name


# --- evaluated by real Terraform -----------------------------------------------------------------


def variables_root(
    tmp_path: Path, module: Path, values: dict, platform: dict, with_main: bool = False
) -> Path:
    root = tmp_path / module.name
    root.mkdir()
    files = ["variables.tf", "variables_platform.tf"] + (["main.tf"] if with_main else [])
    for name in files:
        shutil.copy(module / name, root / name)
    (root / "endpoint.auto.tfvars.json").write_text(json.dumps(values), encoding="utf-8")
    (root / "platform.auto.tfvars.json").write_text(json.dumps(platform), encoding="utf-8")
    return root


def run(terraform, root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(terraform.path), *args, "-input=false", "-no-color"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def plan(terraform, root: Path) -> subprocess.CompletedProcess:
    assert run(terraform, root, "init").returncode == 0
    return run(terraform, root, "plan")


def k8s_values(make_kernel, **changes) -> dict:
    return {**tfvars_for(read_kernel(make_kernel()), IMAGE, "k8s"), **changes}


@pytest.mark.terraform
@pytest.mark.parametrize("mode", ["kserve", "deployment"])
def test_a_leading_digit_model_name_fails_at_plan_time(terraform, make_kernel, tmp_path, mode):
    values = k8s_values(make_kernel, model_name="3iris")
    result = plan(terraform, variables_root(tmp_path, K8S, values, {"serving_mode": mode}))
    flat = " ".join(result.stderr.split())
    assert result.returncode == 1 and "Invalid value for variable" in flat, result.stderr
    assert "must be a DNS-1035 label" in flat and "cannot start with a digit" in flat


@pytest.mark.terraform
def test_a_letter_first_model_name_passes(terraform, make_kernel, tmp_path):
    values = k8s_values(make_kernel, model_name="iris3-v2")
    result = plan(terraform, variables_root(tmp_path, K8S, values, {"serving_mode": "kserve"}))
    assert result.returncode == 0, result.stderr


@pytest.mark.terraform
@pytest.mark.parametrize(
    ("platform", "message"),
    [
        ({"kserve_canary_traffic_percent": 101}, "whole number from 0 to 100"),
        ({"kserve_canary_traffic_percent": -1}, "whole number from 0 to 100"),
        ({"kserve_canary_traffic_percent": 12.5}, "whole number from 0 to 100"),
        ({"kserve_deployment_mode": "RawDeployment"}, "renamed RawDeployment to Standard"),
        ({"kserve_deployment_mode": "Serverless"}, "Serverless to Knative"),
    ],
)
def test_kserve_platform_inputs_are_validated(terraform, make_kernel, tmp_path, platform, message):
    result = plan(terraform, variables_root(tmp_path, K8S, k8s_values(make_kernel), platform))
    flat = " ".join(result.stderr.split())
    assert result.returncode == 1 and message in flat, result.stderr


@pytest.mark.terraform
@pytest.mark.parametrize("percent", [0, 10, 100])
def test_kserve_canary_percentages_are_accepted(terraform, make_kernel, tmp_path, percent):
    platform = {"kserve_canary_traffic_percent": percent, "kserve_deployment_mode": "Knative"}
    result = plan(terraform, variables_root(tmp_path, K8S, k8s_values(make_kernel), platform))
    assert result.returncode == 0, result.stderr


@pytest.mark.terraform
@pytest.mark.parametrize(
    ("platform", "ok"),
    [
        ({"traffic_shift_mode": "LINEAR", "traffic_shift_percent": 25}, True),
        ({"traffic_shift_mode": "BLUE"}, False),
        ({"traffic_shift_percent": 100}, False),
        ({"traffic_shift_timeout_seconds": 60}, False),
    ],
)
def test_sagemaker_traffic_shifting_inputs(terraform, make_kernel, tmp_path, platform, ok):
    values = tfvars_for(read_kernel(make_kernel()), ECR_IMAGE, "sagemaker")
    result = plan(terraform, variables_root(tmp_path, SAGEMAKER, values, {**SAGEMAKER_PLATFORM, **platform}))
    assert (result.returncode == 0) is ok, result.stderr


PROBE = 'output "annotations" { value = local.annotations }\n'


@pytest.mark.terraform
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"measured_memory_peak_bytes": 734003200, "monitoring_enabled": True},
            {"kernelshim.io/measured-memory-peak-bytes": "734003200", "kernelshim.io/monitoring": "true"},
        ),
        ({}, {"kernelshim.io/monitoring": "false"}),
    ],
)
def test_measured_peak_and_monitoring_become_annotations(terraform, make_kernel, tmp_path, values, expected):
    root = variables_root(tmp_path, K8S, k8s_values(make_kernel, **values), {}, with_main=True)
    (root / "probe.tf").write_text(PROBE, encoding="utf-8")
    assert run(terraform, root, "init").returncode == 0
    assert run(terraform, root, "apply", "-auto-approve").returncode == 0
    output = subprocess.run(
        [str(terraform.path), "output", "-json"], cwd=root, capture_output=True, text=True
    )
    annotations = json.loads(output.stdout)["annotations"]["value"]
    assert {k: v for k, v in annotations.items() if k.startswith("kernelshim.io/")} == expected
    assert annotations["prometheus.io/scrape"] == "true"
