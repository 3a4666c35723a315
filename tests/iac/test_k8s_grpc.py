"""The k8s module serves the Open Inference Protocol over gRPC next to REST (issue 11 item 3).

Read from the HCL: the container exposes ``grpc_port`` and is told it (KERNELSHIM_GRPC_PORT), the
Service gets a port named ``grpc`` with ``app_protocol = "grpc"``, the InferenceService declares
the port KServe expects (named ``h2c``), the NetworkPolicy admits it, and every probe stays on
REST. With a real terraform binary the module's own locals are evaluated for each serving mode
(main.tf needs no provider), and ``grpc_port``'s validation is exercised.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shim.contract.kernel import read_kernel
from shim.iac.hcl_module import module_dir, read_variables
from shim.iac.tfvars import tfvars_for

from .conftest import IMAGE
from .test_modules_hcl import hcl

MODULE = module_dir("k8s")


def _resource(file: str, kind: str, name: str) -> dict[str, Any]:
    for block in hcl(MODULE / file)["resource"]:
        if kind in block and name in block[kind]:
            return block[kind][name]
    raise AssertionError(f"{file} has no {kind}.{name}")


def _dynamic(body: dict[str, Any], block: str) -> dict[str, Any]:
    (found,) = [entry[block] for entry in body.get("dynamic", []) if block in entry]
    return found


def test_grpc_port_is_a_platform_variable_defaulting_to_kserves_port() -> None:
    variable = read_variables(MODULE)["grpc_port"]
    assert variable.file == "variables_platform.tf" and not variable.from_contract
    (block,) = [b["grpc_port"] for b in hcl(MODULE / "variables_platform.tf")["variable"] if "grpc_port" in b]
    assert block["default"] == 8081 and block["type"] == "number"
    (validation,) = block["validation"]
    assert "var.grpc_port == 0" in validation["condition"] and "1024" in validation["condition"]
    # The same bounds as `port`, plus 0 (off).
    (port,) = [b["port"] for b in hcl(MODULE / "variables_platform.tf")["variable"] if "port" in b]
    same_bounds = port["validation"][0]["condition"].replace("var.port", "var.grpc_port")
    assert same_bounds.removeprefix("${").removesuffix("}") in validation["condition"]


def test_the_deployment_exposes_grpc_and_keeps_its_probes_on_rest() -> None:
    deployment = _resource("deployment.tf", "kubernetes_deployment_v1", "endpoint")
    (container,) = deployment["spec"][0]["template"][0]["spec"][0]["container"]
    assert container["port"] == [{"name": "http", "container_port": "${var.port}", "protocol": "TCP"}]
    grpc = _dynamic(container, "port")
    assert grpc["for_each"] == "${local.grpc ? [local.grpc_port] : []}"
    assert grpc["content"] == [{"name": "grpc", "container_port": "${port.value}", "protocol": "TCP"}]
    for probe in ("startup_probe", "liveness_probe", "readiness_probe"):
        assert container[probe][0]["http_get"][0]["port"] == "http", probe
    environment = hcl(MODULE / "main.tf")["locals"][0]["environment"]
    assert "KERNELSHIM_GRPC_PORT = tostring(local.grpc_port)" in environment


def test_the_service_has_a_grpc_port_with_app_protocol_grpc() -> None:
    service = _resource("deployment.tf", "kubernetes_service_v1", "endpoint")
    (spec,) = service["spec"]
    assert [p["name"] for p in spec["port"]] == ["http"]
    grpc = _dynamic(spec, "port")
    assert grpc["for_each"] == "${local.grpc ? [local.grpc_port] : []}"
    assert grpc["content"] == [{
        "name": "grpc", "port": "${port.value}", "target_port": "grpc", "protocol": "TCP",
        "app_protocol": "grpc",
    }]


def test_the_inference_service_declares_the_ports_and_keeps_its_probes_on_rest() -> None:
    manifest = _resource("kserve.tf", "kubernetes_manifest", "inference_service")["manifest"]
    (container,) = manifest["spec"]["predictor"]["containers"]
    assert container["ports"] == "${local.kserve_ports}"  # evaluated per mode below
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "${var.port}", probe


def test_the_network_policy_admits_every_serving_port() -> None:
    policy = _resource("disruption.tf", "kubernetes_network_policy_v1", "endpoint")
    (ingress,) = policy["spec"][0]["ingress"]
    assert "ports" not in ingress  # only the dynamic block: REST and, unless off, gRPC
    ports = _dynamic(ingress, "ports")
    assert ports["for_each"] == "${local.serving_ports}"
    assert ports["content"] == [{"port": "${tostring(ports.value)}", "protocol": "TCP"}]


# --- the locals, evaluated by real Terraform ---------------------------------------------------

PROBE_OUTPUTS = """
output "environment" { value = local.environment }
output "kserve_ports" { value = local.kserve_ports }
output "serving_ports" { value = local.serving_ports }
output "grpc" { value = local.grpc }
"""


def _locals_root(tmp_path: Path, values: dict[str, Any], platform: dict[str, Any]) -> Path:
    """The module's variables and locals (main.tf holds no resource) plus outputs showing them."""
    root = tmp_path / "k8s-locals"
    root.mkdir()
    for name in ("variables.tf", "variables_platform.tf", "main.tf"):
        shutil.copy(MODULE / name, root / name)
    (root / "probe_outputs.tf").write_text(PROBE_OUTPUTS, encoding="utf-8")
    (root / "endpoint.auto.tfvars.json").write_text(json.dumps(values), encoding="utf-8")
    (root / "platform.auto.tfvars.json").write_text(json.dumps(platform), encoding="utf-8")
    return root


def _terraform(terraform, root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(terraform.path), *args], cwd=root, capture_output=True, text=True, timeout=300)


def _evaluate(terraform, root: Path) -> dict[str, Any]:
    init = _terraform(terraform, root, "init", "-input=false", "-no-color")
    assert init.returncode == 0, init.stderr
    apply = _terraform(terraform, root, "apply", "-input=false", "-no-color", "-auto-approve")
    assert apply.returncode == 0, apply.stderr
    output = _terraform(terraform, root, "output", "-json", "-no-color")
    assert output.returncode == 0, output.stderr
    return {name: entry["value"] for name, entry in json.loads(output.stdout).items()}


HTTP1 = {"name": "http1", "containerPort": 8080, "protocol": "TCP"}
H2C = {"name": "h2c", "containerPort": 8081, "protocol": "TCP"}


@pytest.mark.terraform
@pytest.mark.parametrize(
    ("platform", "grpc_port", "kserve_ports"),
    [
        ({}, "8081", [HTTP1, H2C]),
        ({"serving_mode": "kserve"}, "8081", [HTTP1, H2C]),  # Standard (the default)
        ({"serving_mode": "kserve", "kserve_deployment_mode": "Knative"}, "0", [HTTP1]),  # one port
        ({"grpc_port": 0}, "0", [HTTP1]),
        ({"serving_mode": "kserve", "grpc_port": 0}, "0", [HTTP1]),
        ({"grpc_port": 9000, "port": 9001}, "9000",
         [{**HTTP1, "containerPort": 9001}, {**H2C, "containerPort": 9000}]),
    ],
    ids=["deployment", "kserve-raw", "kserve-knative", "deployment-off", "kserve-off", "custom-ports"],
)
def test_locals_per_serving_mode(terraform, make_kernel, tmp_path, platform, grpc_port, kserve_ports):
    values = tfvars_for(read_kernel(make_kernel()), IMAGE, "k8s")
    result = _evaluate(terraform, _locals_root(tmp_path, values, platform))
    environment = result["environment"]
    assert environment["KERNELSHIM_GRPC_PORT"] == grpc_port
    assert environment["KERNELSHIM_PORT"] == str(platform.get("port", 8080))
    assert result["grpc"] is (grpc_port != "0")
    assert result["kserve_ports"] == kserve_ports
    assert result["serving_ports"] == [port["containerPort"] for port in kserve_ports]


@pytest.mark.terraform
@pytest.mark.parametrize(("grpc_port", "ok"), [(0, True), (1024, True), (65535, True), (80, False),
                                               (65536, False), (8081.5, False), (-1, False)])
def test_grpc_port_validation(terraform, make_kernel, tmp_path, grpc_port, ok):
    values = tfvars_for(read_kernel(make_kernel()), IMAGE, "k8s")
    root = _locals_root(tmp_path, values, {"grpc_port": grpc_port})
    assert _terraform(terraform, root, "init", "-input=false", "-no-color").returncode == 0
    plan = _terraform(terraform, root, "plan", "-input=false", "-no-color")
    if ok:
        assert plan.returncode == 0, plan.stderr
    else:
        flat = " ".join(plan.stderr.split())
        assert plan.returncode == 1 and "Invalid value for variable" in flat, plan.stderr
        assert "must be 0 (gRPC off) or an unprivileged port (1024-65535)" in flat, plan.stderr
