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
