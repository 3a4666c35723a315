"""Contract-derived gate rules (KS608-KS612) on plan fixtures, in both plan formats and both modes.

Each failing plan is derived in code from a compliant fixture, so every test shows the one change
(what the validator measured, what the contract asks for) that makes the gate fail.
"""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
import yaml

from shim.iac.plan_gate import PlanGate
from shim.iac.plan_json import parse_plan
from shim.iac.plan_policy import load_plan_policy
from shim.iac.quantity import QuantityError, parse_quantity

from .conftest import DIGEST, load_plan_fixture

DEPLOYMENT = "module.endpoint.kubernetes_deployment_v1.endpoint[0]"
ISVC = "module.endpoint.kubernetes_manifest.inference_service[0]"
PEAK = "kernelshim.io/measured-memory-peak-bytes"
MONITORING = "kernelshim.io/monitoring"
MIB = 2**20


def gate(data: dict, **options):
    policy_dir = options.pop("policy_dir", None)
    return PlanGate(load_plan_policy(policy_dir), **options).evaluate(parse_plan(data, "plan.json"))


def codes(result) -> list[str]:
    return sorted(f.code for f in result.findings)


def resource(data: dict, address: str) -> dict:
    return next(c for c in data["resource_changes"] if c["address"] == address)["change"]["after"]


def pod_template(data: dict) -> dict:
    return resource(data, DEPLOYMENT)["spec"][0]["template"][0]


def container(data: dict) -> dict:
    return pod_template(data)["spec"][0]["container"][0]


def annotate(data: dict, **values: str) -> None:
    metadata = pod_template(data)["metadata"][0]
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **values}


def deployment_plan(fixture: str = "k8s_create_v1.2.json", memory: str = "512Mi", peak: int | None = None):
    data = load_plan_fixture(fixture)
    resources = container(data)["resources"][0]
    resources["requests"]["memory"] = resources["limits"]["memory"] = memory
    if peak is not None:
        annotate(data, **{PEAK: str(peak)})
    return data


def kserve_plan(memory: str = "512Mi", peak: int | None = None, **annotations: str):
    data = load_plan_fixture("k8s_kserve_v1.2.json")
    manifest = resource(data, ISVC)["manifest"]
    resources = manifest["spec"]["predictor"]["containers"][0]["resources"]
    resources["requests"]["memory"] = resources["limits"]["memory"] = memory
    if peak is not None:
        annotations[PEAK] = str(peak)
    manifest["metadata"]["annotations"].update(annotations)
    return data


# --- KS608: memory covers the validator's measured peak ----------------------------------------


@pytest.mark.parametrize("fixture", ["k8s_create_v1.2.json", "k8s_update_v0.2.json"])
def test_memory_below_the_measured_peak_is_a_violation_naming_the_resource(fixture):
    result = gate(deployment_plan(fixture, memory="512Mi", peak=700 * MIB))
    assert codes(result) == ["KS608", "KS608"]  # the request and the limit
    finding = result.findings[0]
    assert finding.path == DEPLOYMENT and DEPLOYMENT in finding.message
    assert "container[0] memory request 512Mi" in finding.message and "700.0 MiB" in finding.message
    assert "resources.memory" in finding.fix


def test_memory_at_or_above_the_peak_passes():
    assert gate(deployment_plan(memory="700Mi", peak=700 * MIB)).ok
    assert gate(deployment_plan(memory="1Gi", peak=700 * MIB)).ok
    assert gate(deployment_plan(memory="512Mi")).ok  # nothing measured: nothing to compare


def test_only_a_limit_below_the_peak_is_caught():
    data = deployment_plan(memory="1Gi", peak=700 * MIB)
    container(data)["resources"][0]["limits"]["memory"] = "600Mi"
    result = gate(data)
    assert codes(result) == ["KS608"] and "memory limit 600Mi" in result.findings[0].message


def test_missing_memory_request_with_a_measured_peak_is_a_violation():
    data = deployment_plan(memory="1Gi", peak=700 * MIB)
    del container(data)["resources"][0]["requests"]["memory"]
    result = gate(data)
    assert codes(result) == ["KS608"] and "is not set" in result.findings[0].message


def test_kserve_memory_below_the_peak_names_the_inference_service():
    result = gate(kserve_plan(memory="256Mi", peak=300 * MIB))
    assert codes(result) == ["KS608", "KS608"]
    assert all(f.path == ISVC for f in result.findings)
    assert "spec.predictor.containers[0] memory request 256Mi" in result.findings[0].message


def test_headroom_from_the_policy_is_applied(tmp_path):
    policy = yaml.safe_load(load_plan_policy().source.read_text())
    policy["contract_rules"]["memory"]["headroom_percent"] = 50
    (tmp_path / "plan_policy.yaml").write_text(yaml.safe_dump(policy))
    data = deployment_plan(memory="1Gi", peak=700 * MIB)
    assert gate(copy.deepcopy(data)).ok
    result = gate(data, policy_dir=tmp_path)
    assert codes(result) == ["KS608", "KS608"] and "50% headroom" in result.findings[0].message


@pytest.mark.parametrize("bad", ["lots", "-5", "1e9", "12.5"])
def test_an_unreadable_peak_annotation_is_reported(bad):
    data = deployment_plan(memory="1Gi")
    annotate(data, **{PEAK: bad})
    result = gate(data)
    assert codes(result) == ["KS608"] and "not a whole number of bytes" in result.findings[0].message


def test_an_unreadable_memory_quantity_is_reported_not_guessed():
    data = deployment_plan(memory="a lot", peak=MIB)
    result = gate(data)
    assert codes(result) == ["KS608", "KS608"] and "not a Kubernetes quantity" in result.findings[0].message


def test_memory_unknown_until_apply_fails_closed():
    data = deployment_plan(memory="1Gi", peak=MIB)
    change = next(c for c in data["resource_changes"] if c["address"] == DEPLOYMENT)["change"]
    del container(data)["resources"][0]["requests"]["memory"]
    change["after_unknown"] = {
        "spec": [{"template": [{"spec": [{"container": [{"resources": [{"requests": {"memory": True}}]}]}]}]}]
    }
    assert codes(gate(data)) == ["KS607"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512Mi", 512 * MIB),
        ("1Gi", 2**30),
        ("1G", 10**9),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("1e3", 1000),
        ("100", 100),
        ("500m", Decimal("0.5")),
        ("2k", 2000),
    ],
)
def test_quantities(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "1 Gi", "1GB", "1.2.3", None, True, "9" * 100])
def test_bad_quantities(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)


# --- KS609: probes on the v2 health endpoints --------------------------------------------------


def test_readiness_probe_on_another_path_is_a_violation():
    data = deployment_plan()
    container(data)["readiness_probe"][0]["http_get"][0]["path"] = "/healthz"
    result = gate(data)
    assert codes(result) == ["KS609"]
    assert "readiness probe checks '/healthz'" in result.findings[0].message
    assert result.findings[0].path == DEPLOYMENT


def test_missing_liveness_probe_is_a_violation():
    data = deployment_plan()
    del container(data)["liveness_probe"]
    result = gate(data)
    assert codes(result) == ["KS609"] and "no liveness probe" in result.findings[0].message


def test_grpc_health_probe_is_accepted_unless_the_policy_forbids_it(tmp_path):
    data = deployment_plan()
    container(data)["readiness_probe"] = [{"grpc": [{"port": 8081, "service": ""}], "http_get": []}]
    assert gate(copy.deepcopy(data)).ok
    policy = yaml.safe_load(load_plan_policy().source.read_text())
    policy["contract_rules"]["probes"]["allow_grpc"] = False
    (tmp_path / "plan_policy.yaml").write_text(yaml.safe_dump(policy))
    assert codes(gate(data, policy_dir=tmp_path)) == ["KS609"]


def test_kserve_probe_path_is_checked():
    data = kserve_plan()
    manifest = resource(data, ISVC)["manifest"]
    manifest["spec"]["predictor"]["containers"][0]["livenessProbe"]["httpGet"]["path"] = "/"
    result = gate(data)
    assert codes(result) == ["KS609"] and result.findings[0].path == ISVC


# --- KS610 / KS611: monitoring profile ---------------------------------------------------------


def prometheus_rule(namespace: str = "models", kind: str = "PrometheusRule") -> dict:
    """A kubernetes_manifest as the k8s module's monitoring.tf plans it (hashicorp/kubernetes 2.x)."""
    return {
        "address": f"module.endpoint.kubernetes_manifest.{kind.lower()}[0]",
        "module_address": "module.endpoint",
        "mode": "managed",
        "type": "kubernetes_manifest",
        "name": kind.lower(),
        "index": 0,
        "provider_name": "registry.terraform.io/hashicorp/kubernetes",
        "change": {
            "actions": ["create"],
            "before": None,
            "after": {
                "manifest": {
                    "apiVersion": "monitoring.coreos.com/v1",
                    "kind": kind,
                    "metadata": {
                        "name": "iris-classifier",
                        "namespace": namespace,
                        "labels": {
                            "cost-center": "cc-ml-4711",
                            "managed-by": "kernelshim",
                            "data-classification": "internal",
                        },
                    },
                    "spec": {},
                }
            },
            "after_unknown": {"object": True},
        },
    }


def test_monitored_kernel_without_alert_rules_is_a_violation():
    data = deployment_plan()
    annotate(data, **{MONITORING: "true"})
    result = gate(data)
    assert codes(result) == ["KS611"] and "no PrometheusRule" in result.findings[0].message
    data["resource_changes"].append(prometheus_rule())
    assert gate(data).ok


def test_alert_rules_in_another_namespace_do_not_count():
    data = deployment_plan()
    annotate(data, **{MONITORING: "true"})
    data["resource_changes"].append(prometheus_rule(namespace="elsewhere"))
    assert codes(gate(data)) == ["KS611"]


def test_monitored_kernel_without_scrape_annotations_is_a_violation():
    data = deployment_plan()
    annotate(data, **{MONITORING: "true", "prometheus.io/scrape": "false"})
    data["resource_changes"].append(prometheus_rule())
    result = gate(data)
    assert codes(result) == ["KS610"] and "prometheus.io/scrape" in result.findings[0].expected
    data["resource_changes"].append(prometheus_rule(kind="ServiceMonitor"))
    assert gate(data).ok  # a ServiceMonitor selecting the pods is the other way to be scraped


def test_kserve_monitoring_is_read_from_the_inference_service():
    data = kserve_plan(**{MONITORING: "true"})
    assert codes(gate(copy.deepcopy(data))) == ["KS611"]
    data["resource_changes"].append(prometheus_rule())
    assert gate(data).ok


def test_unmonitored_kernels_need_no_rules():
    data = deployment_plan()
    annotate(data, **{MONITORING: "false", "prometheus.io/scrape": "false"})
    assert gate(data).ok


# --- KS612: the image this deploy built ---------------------------------------------------------


def test_another_digest_than_the_built_one_is_a_violation():
    data = deployment_plan()
    assert gate(copy.deepcopy(data), expected_image_digest=DIGEST).ok
    other = "sha256:" + "ab" * 32
    result = gate(data, expected_image_digest=other)
    assert codes(result) == ["KS612"] and result.findings[0].path == DEPLOYMENT
    assert other in result.findings[0].message


def test_the_root_image_variable_is_checked_when_no_resource_has_an_image():
    plan = {
        "format_version": "0.2",
        "terraform_version": "1.0.3",
        "resource_changes": [],
        "planned_values": {},
        "variables": {"image": {"value": f"registry.example.com/m/x@{DIGEST}"}},
    }
    assert gate(copy.deepcopy(plan), expected_image_digest=DIGEST).ok
    result = gate(copy.deepcopy(plan), expected_image_digest="sha256:" + "00" * 32)
    assert codes(result) == ["KS612"] and result.findings[0].path == "var.image"
    plan["variables"]["image"]["value"] = f"elsewhere.example.org/m/x@{DIGEST}"
    assert codes(gate(copy.deepcopy(plan))) == ["KS606"]
    del plan["variables"]["image"]
    assert gate(copy.deepcopy(plan)).ok
    assert codes(gate(plan, expected_image_digest=DIGEST)) == ["KS612"]


def test_contract_rules_are_optional_in_a_replacement_policy(tmp_path):
    policy = yaml.safe_load(load_plan_policy().source.read_text())
    del policy["contract_rules"]
    (tmp_path / "plan_policy.yaml").write_text(yaml.safe_dump(policy))
    assert codes(gate(deployment_plan(memory="1Mi", peak=MIB * 5), policy_dir=tmp_path)) == ["KS608", "KS608"]


# --- hostile plan JSON: a finding or a pass, never an exception ----------------------------------


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


def _replace(data, path, value):
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@pytest.mark.parametrize("fixture", ["k8s_create_v1.2.json", "k8s_kserve_v1.2.json"])
@pytest.mark.parametrize("junk", [None, 7, "x", [], {}, True, [None], {"": None}])
def test_any_value_of_the_workload_replaced_by_junk_is_handled(fixture, junk):
    address = DEPLOYMENT if "create" in fixture else ISVC
    base = load_plan_fixture(fixture)
    annotate_target = resource(base, address)
    paths = [p for p in _paths(annotate_target) if len(p) <= 9]
    for path in paths[:: max(1, len(paths) // 30)]:
        data = copy.deepcopy(base)
        _replace(resource(data, address), path, junk)
        result = gate(data, expected_image_digest=DIGEST)  # must not raise
        assert all(f.code.startswith("KS6") for f in result.findings)
