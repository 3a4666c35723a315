"""Policy-as-code on the modules: checkov with the platform's custom checks in policies/checkov."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import MODULES, REPO

CUSTOM_CHECKS = REPO / "policies" / "checkov"
CUSTOM_IDS = {f"CKV2_KSHIM_{i}" for i in range(1, 6)}


def run_checkov(checkov: list[str], directory: Path) -> dict:
    result = subprocess.run(
        [
            *checkov,
            "--directory",
            str(directory),
            "--framework",
            "terraform",
            "--external-checks-dir",
            str(CUSTOM_CHECKS),
            "--output",
            "json",
            "--compact",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        # BC_SKIP_MAPPING: do not fetch check guidelines from the vendor's API (offline).
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.fixture(scope="module")
def modules_report(request) -> dict:
    checkov = request.getfixturevalue("checkov_module")
    return run_checkov(checkov, MODULES)


@pytest.fixture(scope="module")
def checkov_module():
    from .conftest import checkov_command, missing_tool

    command = checkov_command()
    if command is None:
        missing_tool("checkov is not installed (run .ci/install-checkov.sh, or set KERNELSHIM_CHECKOV)")
    return command


def test_modules_pass_checkov_with_the_platform_checks(modules_report):
    failed = [
        (c["check_id"], c["resource"], c["file_path"]) for c in modules_report["results"]["failed_checks"]
    ]
    assert failed == []
    passed_ids = {c["check_id"] for c in modules_report["results"]["passed_checks"]}
    assert passed_ids >= CUSTOM_IDS, f"custom checks that did not run: {CUSTOM_IDS - passed_ids}"
    # Built-in checks that matter for this pattern ran and passed.
    assert {"CKV_AWS_7", "CKV_AWS_98", "CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_22", "CKV_K8S_10"} <= passed_ids


def test_every_skip_has_a_reason(modules_report):
    for skipped in modules_report["results"]["skipped_checks"]:
        assert len(skipped["check_result"].get("suppress_comment", "")) > 30, skipped["check_id"]


def test_custom_checks_catch_a_broken_module(checkov_module, tmp_path):
    broken = tmp_path / "modules"
    shutil.copytree(MODULES, broken)
    k8s = broken / "k8s-model-endpoint"
    (k8s / "main.tf").write_text(
        (k8s / "main.tf").read_text().replace('"cost-center"         = var.cost_center\n', "")
    )
    (k8s / "deployment.tf").write_text(
        (k8s / "deployment.tf").read_text().replace('path = "/v2/health/ready"', 'path = "/healthz"')
    )
    sm = broken / "sagemaker-model-endpoint"
    main = (sm / "main.tf").read_text()
    main = main.replace("  kms_key_arn = aws_kms_key.endpoint.arn\n", "")
    main = main.replace("enable_network_isolation = true", "enable_network_isolation = false")
    main = main.replace("    DataClassification = var.data_classification\n", "")
    (sm / "main.tf").write_text(main)
    report = run_checkov(checkov_module, broken)
    failed = {
        (
            c["check_id"],
            c["resource"].split(".", 1)[-1] if c["resource"].startswith("module.") else c["resource"],
        )
        for c in report["results"]["failed_checks"]
    }
    for expected in [
        ("CKV2_KSHIM_1", "kubernetes_service_v1.endpoint"),
        ("CKV2_KSHIM_2", "aws_sagemaker_endpoint.this"),
        ("CKV2_KSHIM_3", "aws_sagemaker_model.this"),
        ("CKV2_KSHIM_4", "aws_sagemaker_endpoint_configuration.this"),
        ("CKV2_KSHIM_5", "kubernetes_deployment_v1.endpoint"),
    ]:
        assert expected in failed, (expected, sorted(failed))
