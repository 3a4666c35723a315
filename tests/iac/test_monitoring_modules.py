"""The modules' monitoring options (issue 12 item 6), read from the HCL and evaluated by terraform.

k8s: scrape annotations merged over the pod's, an optional ServiceMonitor and an optional
PrometheusRule whose alerts use the metrics ``shim serve`` really exports; SageMaker: optional data
capture. With a real terraform binary the modules' locals are evaluated (no provider needed: the
locals block of monitoring.tf is evaluated beside variables and main.tf, which hold no resource).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shim.iac.hcl_module import module_dir, read_variables

from .conftest import REPO
from .test_modules_hcl import hcl

K8S = module_dir("k8s")
SAGEMAKER = module_dir("sagemaker")
EXPORTED = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "shim" / "server").rglob("*.py"))


def _resource(module: Path, file: str, kind: str, name: str) -> dict[str, Any]:
    for block in hcl(module / file).get("resource", []):
        if kind in block and name in block[kind]:
            return block[kind][name]
    raise AssertionError(f"{file} has no {kind}.{name}")


def test_monitoring_variables_are_optional_and_off_by_default() -> None:
    variables = read_variables(K8S)
    defaults = {
        name: block[name].get("default")
        for block in hcl(K8S / "variables_monitoring.tf")["variable"]
        for name in block
    }
    assert defaults["prometheus_scrape"] is True
    assert defaults["service_monitor"] is False and defaults["prometheus_rule"] is False
    for name in defaults:
        assert variables[name].file == "variables_monitoring.tf" and not variables[name].required
    sagemaker = {
        name: block[name]
        for block in hcl(SAGEMAKER / "variables_monitoring.tf")["variable"]
        for name in block
    }
    assert sagemaker["data_capture_s3_uri"]["default"] is None


def test_pod_annotations_merge_the_monitoring_annotations() -> None:
    deployment = _resource(K8S, "deployment.tf", "kubernetes_deployment_v1", "endpoint")
    metadata = deployment["spec"][0]["template"][0]["metadata"][0]
    assert metadata["annotations"] == "${merge(local.annotations, local.monitoring_annotations)}"


def test_kserve_inference_service_carries_the_monitoring_annotations() -> None:
    """KServe copies the InferenceService's annotations to its predictor pods: the scrape
    annotations must be there too, or a monitored kernel in kserve mode is never scraped (KS610)."""
    service = _resource(K8S, "kserve.tf", "kubernetes_manifest", "inference_service")
    annotations = service["manifest"]["metadata"]["annotations"]
    assert annotations.startswith("${merge(local.annotations, local.monitoring_annotations, {")


def test_service_monitor_and_prometheus_rule_are_conditional_manifests() -> None:
    monitor = _resource(K8S, "monitoring.tf", "kubernetes_manifest", "service_monitor")
    assert monitor["count"] == "${var.service_monitor && !local.kserve ? 1 : 0}"
    assert monitor["manifest"]["kind"] == "ServiceMonitor"
    assert monitor["manifest"]["apiVersion"] == "monitoring.coreos.com/v1"
    (endpoint,) = monitor["manifest"]["spec"]["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "${var.scrape_interval}"}
    assert monitor["manifest"]["spec"]["selector"]["matchLabels"] == "${local.selector_labels}"
    # the Service it selects carries those labels and names its REST port "http"
    service = _resource(K8S, "deployment.tf", "kubernetes_service_v1", "endpoint")
    assert service["spec"][0]["selector"] == "${local.selector_labels}"
    assert any(p["name"] == "http" for p in service["spec"][0]["port"])
    rule = _resource(K8S, "monitoring.tf", "kubernetes_manifest", "prometheus_rule")
    assert rule["count"] == "${var.prometheus_rule ? 1 : 0}"
    assert rule["manifest"]["kind"] == "PrometheusRule"
    assert rule["manifest"]["spec"]["groups"][0]["rules"] == "${local.prometheus_alerts}"


def test_sagemaker_endpoint_configuration_renders_data_capture() -> None:
    config = _resource(SAGEMAKER, "main.tf", "aws_sagemaker_endpoint_configuration", "this")
    (dynamic,) = [d["data_capture_config"] for d in config["dynamic"] if "data_capture_config" in d]
    assert dynamic["for_each"] == "${local.data_capture}"
    content = dynamic["content"][0] if isinstance(dynamic["content"], list) else dynamic["content"]
    assert content["enable_capture"] is True
    assert content["kms_key_id"] == "${aws_kms_key.endpoint.arn}"
    modes = [c["capture_mode"] for c in content["capture_options"]]
    assert sorted(modes) == ["Input", "Output"]


def _locals_block(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    match = re.search(r"^locals \{\n.*?^\}\n", text, flags=re.S | re.M)
    assert match, f"{path} has no top-level locals block"
    return match.group(0)


def _evaluate(terraform, root: Path) -> dict[str, Any]:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(terraform.path), *args, "-no-color"], cwd=root, capture_output=True, text=True, timeout=300
        )

    init = run("init", "-input=false")
    assert init.returncode == 0, init.stderr
    apply = run("apply", "-input=false", "-auto-approve")
    if apply.returncode != 0:
        return {"error": apply.stderr}
    output = run("output", "-json")
    assert output.returncode == 0, output.stderr
    return {name: entry["value"] for name, entry in json.loads(output.stdout).items()}


def _k8s_root(tmp_path: Path, platform: dict[str, Any]) -> Path:
    root = tmp_path / "k8s"
    root.mkdir(parents=True)
    for name in ("variables.tf", "variables_platform.tf", "variables_monitoring.tf", "main.tf"):
        shutil.copy(K8S / name, root / name)
    (root / "monitoring_locals.tf").write_text(_locals_block(K8S / "monitoring.tf"), encoding="utf-8")
    (root / "outputs.tf").write_text(
        'output "annotations" { value = merge(local.annotations, local.monitoring_annotations) }\n'
        'output "alerts" { value = local.prometheus_alerts }\n',
        encoding="utf-8",
    )
    values = {
        "model_name": "iris-classifier",
        "model_version": "0.1.0",
        "image": "registry.example.com/models/iris@sha256:" + "a" * 64,
        "cost_center": "cc-1",
        "data_classification": "internal",
        "namespace": "models",
    }
    declared = {name for block in hcl(K8S / "variables.tf")["variable"] for name in block} | {
        name for block in hcl(K8S / "variables_platform.tf")["variable"] for name in block
    }
    (root / "values.auto.tfvars.json").write_text(
        json.dumps({k: v for k, v in {**values, **platform}.items() if k in declared or k in platform}),
        encoding="utf-8",
    )
    return root


@pytest.mark.terraform
def test_k8s_alerts_and_annotations_evaluate(terraform, tmp_path: Path) -> None:
    values = _evaluate(
        terraform,
        _k8s_root(
            tmp_path,
            {"alert_5xx_ratio": 0.02, "alert_p99_latency_seconds": 0.25, "alert_labels": {"team": "ds-core"}},
        ),
    )
    assert "error" not in values, values.get("error")
    assert values["annotations"]["prometheus.io/scrape"] == "true"
    assert values["annotations"]["prometheus.io/path"] == "/metrics"
    alerts = {a["alert"]: a for a in values["alerts"]}
    assert set(alerts) == {
        "KernelshimFeatureDrift",
        "KernelshimLiveAccuracyDrop",
        "KernelshimHigh5xxRate",
        "KernelshimHighP99Latency",
        "KernelshimNotReady",
    }
    assert 'shim_drift_alert{model="iris-classifier"}' in alerts["KernelshimFeatureDrift"]["expr"]
    assert "shim_live_accuracy_alert" in alerts["KernelshimLiveAccuracyDrop"]["expr"]
    assert 'code=~"5.."' in alerts["KernelshimHigh5xxRate"]["expr"]
    assert alerts["KernelshimHigh5xxRate"]["expr"].endswith("> 0.02")
    assert alerts["KernelshimHighP99Latency"]["expr"].startswith("histogram_quantile(0.99")
    assert alerts["KernelshimHighP99Latency"]["expr"].endswith("> 0.25")
    assert "shim_model_ready" in alerts["KernelshimNotReady"]["expr"]
    for alert in alerts.values():
        assert alert["labels"]["team"] == "ds-core" and alert["labels"]["model"] == "iris-classifier"
        assert alert["for"] and alert["annotations"]["summary"]
        for metric in re.findall(r"\b(shim_[a-z_]+?)(?:_total|_bucket)?\{", alert["expr"]):
            assert f'"{metric}"' in EXPORTED, f"{metric} is not a metric the server exports"
    off = _evaluate(terraform, _k8s_root(tmp_path / "off", {"prometheus_scrape": False}))
    assert off["annotations"]["prometheus.io/scrape"] == "false"
    bad = _evaluate(terraform, _k8s_root(tmp_path / "bad", {"alert_5xx_ratio": 2}))
    assert "alert_5xx_ratio must be in (0, 1]" in bad["error"]


@pytest.mark.terraform
def test_sagemaker_data_capture_evaluates(terraform, tmp_path: Path) -> None:
    def root(name: str, platform: dict[str, Any]) -> Path:
        directory = tmp_path / name
        directory.mkdir()
        shutil.copy(SAGEMAKER / "variables_monitoring.tf", directory / "variables_monitoring.tf")
        (directory / "monitoring.tf").write_text(_locals_block(SAGEMAKER / "monitoring.tf"), encoding="utf-8")
        (directory / "outputs.tf").write_text(
            'output "capture" { value = local.data_capture }\n', encoding="utf-8"
        )
        (directory / "values.auto.tfvars.json").write_text(json.dumps(platform), encoding="utf-8")
        return directory

    assert _evaluate(terraform, root("off", {}))["capture"] == []
    on = _evaluate(
        terraform,
        root("on", {"data_capture_s3_uri": "s3://ml-capture/iris/", "data_capture_sampling_percentage": 25}),
    )
    assert on["capture"] == [
        {"destination_s3_uri": "s3://ml-capture/iris/", "initial_sampling_percentage": 25}
    ]
    bad = _evaluate(terraform, root("bad", {"data_capture_s3_uri": "https://example.com/x"}))
    assert "s3://bucket[/prefix]" in bad["error"]
