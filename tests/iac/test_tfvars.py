"""`shim tf vars`: Terraform variables derived from the kernel's contract."""

from __future__ import annotations

import json

import pytest

from shim.cli.main import main
from shim.contract.kernel import read_kernel
from shim.iac.image_ref import ImageRefError
from shim.iac.tfvars import TfvarsError, tfvars_for

from .conftest import ECR_IMAGE, IMAGE


def test_k8s_values_come_from_the_contract(make_kernel):
    values = tfvars_for(read_kernel(make_kernel()), IMAGE, "k8s")
    assert values == {
        "model_name": "iris-classifier",
        "model_version": "0.1.0",
        "image": IMAGE,
        "cost_center": "cc-ml-4711",
        "data_classification": "internal",
        "labels": {"team": "ds-core"},
        "cpu": "2",
        "memory": "1Gi",
        "gpu": 1,
        "environment": {"KERNELSHIM_MAX_BATCH_SIZE": "64", "KERNELSHIM_MAX_QUEUE_DELAY_US": "200"},
        "measured_memory_peak_bytes": None,
        "monitoring_enabled": False,
    }


def test_sagemaker_values_carry_labels_as_tags(make_kernel):
    values = tfvars_for(read_kernel(make_kernel(resources={"cpu": "1"})), ECR_IMAGE, "sagemaker")
    assert values["tags"] == {"team": "ds-core"} and values["gpu"] == 0
    assert "cpu" not in values and "labels" not in values


def test_kernel_without_batching_or_resources_gets_module_defaults(make_kernel):
    values = tfvars_for(read_kernel(make_kernel(batching=None, resources=None)), IMAGE, "k8s")
    assert values["environment"] == {"KERNELSHIM_MAX_BATCH_SIZE": "0", "KERNELSHIM_MAX_QUEUE_DELAY_US": "0"}
    assert "cpu" not in values and "memory" not in values and values["gpu"] == 0


def test_missing_data_classification_names_the_label_and_the_fix(make_kernel):
    kernel = read_kernel(make_kernel(labels={"team": "ds-core"}))
    with pytest.raises(TfvarsError) as info:
        tfvars_for(kernel, IMAGE, "k8s")
    message = str(info.value)
    assert "model_metadata.json: $.labels.data-classification is missing" in message
    assert '"labels": {"data-classification": "internal"}' in message


@pytest.mark.parametrize(
    "image",
    [
        "registry.example.com/models/iris-classifier:0.1.0",
        "registry.example.com/models/iris-classifier",
        "iris-classifier@" + "sha256:" + "3f" * 32,  # no registry
        "registry.example.com/models/iris@sha256:short",
    ],
)
def test_image_must_be_pinned_by_digest(make_kernel, image):
    with pytest.raises(ImageRefError):
        tfvars_for(read_kernel(make_kernel()), image, "k8s")


def test_cli_prints_tfvars_json(make_kernel, capsys):
    kernel = make_kernel()
    assert main(["tf", "vars", str(kernel), "--image", ECR_IMAGE, "--module", "sagemaker"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["image"] == ECR_IMAGE and values["cost_center"] == "cc-ml-4711"


def test_cli_errors_are_one_clear_line(make_kernel, tmp_path, capsys):
    assert main(["tf", "vars", str(make_kernel()), "--image", "registry.example.com/m/iris:latest"]) == 2
    err = capsys.readouterr().err
    assert "is not pinned by digest" in err and "Traceback" not in err

    assert main(["tf", "vars", str(make_kernel("k2", labels=None)), "--image", IMAGE]) == 2
    assert "data-classification is missing" in capsys.readouterr().err

    assert main(["tf", "vars", str(make_kernel("k3", cost_center="")), "--image", IMAGE]) == 2
    err = capsys.readouterr().err
    assert "not a valid kernel" in err and "$.cost_center" in err

    assert main(["tf", "vars", str(tmp_path / "nope"), "--image", IMAGE]) == 2
    assert "no such kernel directory" in capsys.readouterr().err


class _MemoryPeak:
    def __init__(self, rss_bytes):
        self.rss_bytes = rss_bytes


class _Report:
    """The shape the validator's report has once it measures memory (``memory_peak.rss_bytes``)."""

    def __init__(self, rss_bytes):
        self.memory_peak = _MemoryPeak(rss_bytes)


@pytest.mark.parametrize("module", ["k8s", "sagemaker"])
def test_measured_memory_peak_is_carried_from_the_report(make_kernel, module):
    kernel = read_kernel(make_kernel())
    image = IMAGE if module == "k8s" else ECR_IMAGE
    assert tfvars_for(kernel, image, module, _Report(734003200))["measured_memory_peak_bytes"] == 734003200
    json_report = {"kernel": "k", "memory": {"peak_rss_bytes": 5, "device_peak_bytes": None, "batch_size": 4}}
    assert tfvars_for(kernel, image, module, json_report)["measured_memory_peak_bytes"] == 5


@pytest.mark.parametrize("report", [None, object(), {}, {"memory": None}, {"memory": {"peak_rss_bytes": "9"}},
                                    {"memory": {"peak_rss_bytes": -1}}, {"memory": {"peak_rss_bytes": True}},
                                    _Report(None)])
def test_a_report_without_a_usable_peak_gives_null(make_kernel, report):
    values = tfvars_for(read_kernel(make_kernel()), IMAGE, "k8s", report)
    assert values["measured_memory_peak_bytes"] is None


def test_monitoring_profile_turns_monitoring_on(make_kernel):
    kernel = read_kernel(make_kernel())
    assert tfvars_for(kernel, IMAGE, "k8s")["monitoring_enabled"] is False
    kernel.metadata["monitoring"] = {"alerts": []}
    assert tfvars_for(kernel, IMAGE, "k8s")["monitoring_enabled"] is True
    assert "monitoring_enabled" not in tfvars_for(kernel, ECR_IMAGE, "sagemaker")


def test_cli_carries_the_validation_report(make_kernel, tmp_path, capsys):
    report = tmp_path / "report.json"
    entry = {"kernel": "k", "memory": {"peak_rss_bytes": 1234}}
    report.write_text(json.dumps({"ok": True, "kernels": [entry]}))
    assert main(["tf", "vars", str(make_kernel()), "--image", IMAGE, "--validation-report", str(report)]) == 0
    assert json.loads(capsys.readouterr().out)["measured_memory_peak_bytes"] == 1234
    report.write_text("not json")
    assert main(["tf", "vars", str(make_kernel("other")), "--image", IMAGE,
                 "--validation-report", str(report)]) == 2
    assert "validation report is not JSON" in capsys.readouterr().err
