"""The policy gate on Terraform plan JSON (formats 0.2 and 1.x) and `shim tf gate`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from shim.cli.main import main
from shim.findings import CODES
from shim.iac.plan_gate import PlanGate
from shim.iac.plan_json import PlanFormatError, parse_plan
from shim.iac.plan_policy import load_plan_policy
from shim.policy.loader import PolicyError

from .conftest import PLANS, load_plan_fixture

DEPLOYMENT = "module.endpoint.kubernetes_deployment_v1.endpoint[0]"
CONTAINER = ("spec", 0, "template", 0, "spec", 0, "container", 0)


def gate(data: dict, *, allow_destroy: bool = False, policy_dir: Path | None = None):
    return PlanGate(load_plan_policy(policy_dir), allow_destroy=allow_destroy).evaluate(
        parse_plan(data, "plan.json")
    )


def change(data: dict, address: str) -> dict:
    return next(c for c in data["resource_changes"] if c["address"] == address)["change"]


def at(value, path):
    for key in path:
        value = value[key]
    return value


def codes(result) -> list[str]:
    return [f.code for f in result.findings]


@pytest.mark.parametrize("fixture", sorted(p.name for p in PLANS.glob("*.json")))
def test_compliant_plans_pass(fixture):
    result = gate(load_plan_fixture(fixture))
    assert result.ok, [f.render() for f in result.findings]


def test_both_plan_format_versions_are_read():
    old, new = load_plan_fixture("k8s_update_v0.2.json"), load_plan_fixture("k8s_create_v1.2.json")
    assert (parse_plan(old).format_version, parse_plan(new).format_version) == ("0.2", "1.2")
    # The same violation is found in either format.
    for data in (old, new):
        container = at(change(data, DEPLOYMENT)["after"], CONTAINER)
        container["image"] = "registry.example.com/models/iris-classifier:latest"
        assert codes(gate(data)) == ["KS605"]


def test_deleting_the_endpoint_is_rejected_with_its_address():
    data = load_plan_fixture("k8s_update_v0.2.json")
    deployment = change(data, DEPLOYMENT)
    deployment.update(actions=["delete"], after=None, after_unknown={})
    result = gate(data)
    assert codes(result) == ["KS601"]
    finding = result.findings[0]
    assert finding.path == DEPLOYMENT
    assert DEPLOYMENT in finding.message and "destroyed" in finding.message
    assert "--allow-destroy" in finding.fix
    assert gate(data, allow_destroy=True).ok


def test_replacing_the_sagemaker_endpoint_is_rejected_with_the_reason():
    data = load_plan_fixture("sagemaker_create_v1.2.json")
    address = "module.endpoint.aws_sagemaker_endpoint.this"
    entry = next(c for c in data["resource_changes"] if c["address"] == address)
    entry["change"]["actions"] = ["delete", "create"]
    entry["change"]["before"] = copy.deepcopy(entry["change"]["after"])
    entry["action_reason"] = "replace_because_cannot_update"
    result = gate(data)
    assert codes(result) == ["KS601"]
    assert result.findings[0].path == address
    assert "replaced" in result.findings[0].message and "cannot update" in result.findings[0].message


def test_missing_cost_center_label_is_rejected_with_its_address():
    data = load_plan_fixture("k8s_create_v1.2.json")
    address = "module.endpoint.kubernetes_service_v1.endpoint[0]"
    del change(data, address)["after"]["metadata"][0]["labels"]["cost-center"]
    result = gate(data)
    assert codes(result) == ["KS602"]
    assert result.findings[0].path == address
    assert f"{address}: required label 'cost-center' is missing" in result.findings[0].message


def test_empty_label_on_the_pod_template_is_rejected():
    data = load_plan_fixture("k8s_create_v1.2.json")
    change(data, DEPLOYMENT)["after"]["spec"][0]["template"][0]["metadata"][0]["labels"]["cost-center"] = " "
    result = gate(data)
    assert codes(result) == ["KS602"]
    assert "spec[0].template[0].metadata[0].labels" in result.findings[0].message


def test_missing_cost_center_tag_is_rejected_with_its_address():
    data = load_plan_fixture("sagemaker_create_v1.2.json")
    address = "module.endpoint.aws_sagemaker_endpoint.this"
    after = change(data, address)["after"]
    for attribute in ("tags", "tags_all"):
        del after[attribute]["CostCenter"]
    result = gate(data)
    assert codes(result) == ["KS603"]
    assert result.findings[0].path == address
    assert "'CostCenter' is missing" in result.findings[0].message


def test_nine_gpus_are_over_the_cap():
    data = load_plan_fixture("k8s_create_v1.2.json")
    # 3 GPUs per replica x HPA max_replicas 3 = 9 > 8
    resources = at(change(data, DEPLOYMENT)["after"], CONTAINER)["resources"][0]
    resources["limits"]["nvidia.com/gpu"] = resources["requests"]["nvidia.com/gpu"] = "3"
    hpa = change(data, "module.endpoint.kubernetes_horizontal_pod_autoscaler_v2.endpoint[0]")
    hpa["after"]["spec"][0]["max_replicas"] = 3
    result = gate(data)
    assert codes(result) == ["KS604"]
    finding = result.findings[0]
    assert finding.path == DEPLOYMENT
    assert "9 GPUs" in finding.message and "cap of 8" in finding.message
    assert f"{DEPLOYMENT}: 3 GPU x 3 replicas = 9" in finding.message
    # 8 is still allowed.
    hpa["after"]["spec"][0]["max_replicas"] = 2
    resources["limits"]["nvidia.com/gpu"] = "4"
    assert gate(data).ok


def test_gpus_are_summed_over_endpoints_and_counted_for_sagemaker_instances():
    data = load_plan_fixture("sagemaker_create_v1.2.json")
    config = change(data, "module.endpoint.aws_sagemaker_endpoint_configuration.this")
    config["after"]["production_variants"][0]["instance_type"] = "ml.g5.12xlarge"  # 4 GPUs
    # max_capacity of the autoscaling target (4) counts, not the initial count (2): 16 GPUs.
    result = gate(data)
    assert codes(result) == ["KS604"]
    assert "16 GPUs" in result.findings[0].message
    assert result.findings[0].path == "module.endpoint.aws_sagemaker_endpoint_configuration.this"
    config["after"]["production_variants"][0]["instance_type"] = "ml.g9.xlarge"  # GPU family, unknown count
    assert codes(gate(data)) == ["KS607"]


def test_kserve_inference_service_gpus_and_protection():
    data = load_plan_fixture("k8s_kserve_v1.2.json")
    result = gate(data)
    assert result.ok and result.gpu_total == 4  # 2 per replica x maxReplicas 2
    address = "module.endpoint.kubernetes_manifest.inference_service[0]"
    isvc = change(data, address)
    isvc["after"]["manifest"]["spec"]["predictor"]["maxReplicas"] = 5
    assert codes(gate(data)) == ["KS604"]
    isvc.update(actions=["delete"], after=None)
    result = gate(data)
    assert codes(result) == ["KS601"] and result.findings[0].path == address


def test_image_by_tag_is_rejected_with_its_address():
    data = load_plan_fixture("k8s_create_v1.2.json")
    at(change(data, DEPLOYMENT)["after"], CONTAINER)["image"] = (
        "registry.example.com/models/iris-classifier:0.1.0"
    )
    result = gate(data)
    assert codes(result) == ["KS605"]
    assert result.findings[0].path == DEPLOYMENT
    assert "container[0].image 'registry.example.com/models/iris-classifier:0.1.0' is not pinned" in (
        result.findings[0].message
    )


def test_image_from_a_registry_not_allowed_is_rejected():
    data = load_plan_fixture("sagemaker_create_v1.2.json")
    address = "module.endpoint.aws_sagemaker_model.this"
    change(data, address)["after"]["primary_container"][0]["image"] = (
        "ghcr.io/someone/model@sha256:" + "0" * 64
    )
    result = gate(data)
    assert codes(result) == ["KS606"] and result.findings[0].path == address


def test_values_unknown_until_apply_fail_closed():
    data = load_plan_fixture("k8s_create_v1.2.json")
    deployment = change(data, DEPLOYMENT)
    del at(deployment["after"], CONTAINER)["image"]
    deployment["after_unknown"]["spec"] = [{"template": [{"spec": [{"container": [{"image": True}]}]}]}]
    result = gate(data)
    assert codes(result) == ["KS607"] and "known only after apply" in result.findings[0].message


def test_every_gate_code_is_registered():
    assert {f"KS6{i:02d}" for i in range(1, 13)} <= set(CODES)  # KS601-KS612


def test_unsupported_inputs_are_clear_errors():
    with pytest.raises(PlanFormatError, match=r"format_version '2\.0' is not supported"):
        parse_plan({"format_version": "2.0", "resource_changes": []})
    with pytest.raises(PlanFormatError, match="looks like state JSON"):
        parse_plan({"format_version": "1.0", "values": {}})
    with pytest.raises(PlanFormatError, match="errored"):
        parse_plan({"format_version": "1.2", "resource_changes": [], "errored": True})
    with pytest.raises(PlanFormatError, match=r"resource_changes\[0\]"):
        parse_plan({"format_version": "1.2", "resource_changes": [{"address": "x"}]})


def test_policy_file_is_validated_by_its_schema(tmp_path):
    (tmp_path / "plan_policy.yaml").write_text("policy_version: '1'\ngpu_cap: -1\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"plan_policy.yaml: breaks contracts/plan_policy.schema.json"):
        load_plan_policy(tmp_path)


def test_policy_override_changes_the_cap(tmp_path):
    shipped = yaml.safe_load((Path(load_plan_policy().source)).read_text(encoding="utf-8"))
    shipped["gpu_cap"] = 2
    (tmp_path / "plan_policy.yaml").write_text(yaml.safe_dump(shipped), encoding="utf-8")
    assert codes(gate(load_plan_fixture("k8s_create_v1.2.json"), policy_dir=tmp_path)) == ["KS604"]


# --- shim tf gate ----------------------------------------------------------------------------


def write_plan(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_cli_gate_passes_a_compliant_plan(capsys):
    assert main(["tf", "gate", str(PLANS / "k8s_create_v1.2.json")]) == 0
    out = capsys.readouterr().out
    assert "5 to create" in out and "Policy gate: passed" in out
    assert "+ module.endpoint.kubernetes_deployment_v1.endpoint[0] (create)" in out
    assert "GPUs at full scale: 4 of 8 allowed" in out


def test_cli_gate_formats(tmp_path, capsys):
    data = load_plan_fixture("k8s_create_v1.2.json")
    at(change(data, DEPLOYMENT)["after"], CONTAINER)["image"] = (
        "registry.example.com/models/iris-classifier:latest"
    )
    plan = write_plan(tmp_path, data)

    assert main(["tf", "gate", str(plan)]) == 1
    text = capsys.readouterr().out
    assert f"{plan}:{DEPLOYMENT}: KS605" in text and "FAILED with 1 violation" in text

    assert main(["tf", "gate", str(plan), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False and report["changes"]["create"] == 5
    assert [(v["code"], v["path"]) for v in report["violations"]] == [("KS605", DEPLOYMENT)]

    assert main(["tf", "gate", str(plan), "--format", "github"]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("::error title=KS605 image not pinned by digest::") and DEPLOYMENT in first


def test_cli_gate_bad_input_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "plan.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["tf", "gate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "Traceback" not in err
    assert main(["tf", "gate", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
