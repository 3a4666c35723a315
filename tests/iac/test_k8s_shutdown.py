"""The k8s module gives a draining shim the time it needs: the pod's termination grace period
covers the drain and the graceful timeout the server is told, in both serving modes."""

from __future__ import annotations

import pytest

from shim.contract.kernel import read_kernel
from shim.iac.tfvars import tfvars_for

from .conftest import IMAGE
from .test_k8s_grpc import _evaluate, _locals_root, _resource, _terraform

PROBE = 'output "termination_grace_period_seconds" { value = local.termination_grace_period_seconds }\n'


def test_the_deployment_and_the_inference_service_use_the_computed_grace_period() -> None:
    deployment = _resource("deployment.tf", "kubernetes_deployment_v1", "endpoint")
    pod = deployment["spec"][0]["template"][0]["spec"][0]
    assert pod["termination_grace_period_seconds"] == "${local.termination_grace_period_seconds}"
    kserve = _resource("kserve.tf", "kubernetes_manifest", "inference_service")
    manifest = kserve["manifest"]
    assert "local.termination_grace_period_seconds" in str(manifest["spec"]["predictor"]), manifest


@pytest.mark.terraform
@pytest.mark.parametrize(
    ("platform", "drain", "graceful", "grace"),
    [({}, "2", "30", 37), ({"drain_seconds": 0, "graceful_timeout_seconds": 120}, "0", "120", 125),
     ({"serving_mode": "kserve", "drain_seconds": 10}, "10", "30", 45)],
    ids=["defaults", "long-requests", "kserve"],
)
def test_the_server_is_told_what_the_grace_period_covers(terraform, make_kernel, tmp_path, platform, drain,
                                                         graceful, grace):
    values = tfvars_for(read_kernel(make_kernel()), IMAGE, "k8s")
    root = _locals_root(tmp_path, values, platform)
    (root / "probe_grace.tf").write_text(PROBE, encoding="utf-8")
    result = _evaluate(terraform, root)
    assert result["environment"]["KERNELSHIM_DRAIN_S"] == drain
    assert result["environment"]["KERNELSHIM_GRACEFUL_TIMEOUT_S"] == graceful
    assert result["termination_grace_period_seconds"] == grace


@pytest.mark.terraform
@pytest.mark.parametrize(("variable", "value"), [("drain_seconds", -1), ("drain_seconds", 1.5),
                                                 ("graceful_timeout_seconds", 3601)])
def test_out_of_range_shutdown_times_fail_at_plan(terraform, make_kernel, tmp_path, variable, value):
    values = tfvars_for(read_kernel(make_kernel()), IMAGE, "k8s")
    root = _locals_root(tmp_path, values, {variable: value})
    assert _terraform(terraform, root, "init", "-input=false", "-no-color").returncode == 0
    plan = _terraform(terraform, root, "plan", "-input=false", "-no-color")
    flat = " ".join(plan.stderr.split())
    assert plan.returncode == 1 and f"The {variable} must be a whole number" in flat, plan.stderr
