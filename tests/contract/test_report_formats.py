"""``--format json|github`` and ``--junit``: machine-readable output that tools can consume."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import EXAMPLE_KERNELS, edit_json


@pytest.fixture
def broken_kernel(kernel_copy) -> Path:
    """Two findings: a datatype mismatch (JSON path) and an unpinned requirement (line 2)."""
    kernel = kernel_copy("iris-classifier")
    edit_json(kernel / "model_metadata.json", lambda m: m["outputs"][0].__setitem__("datatype", "INT32"))
    (kernel / "requirements.txt").write_text("six==1.16.0\nrequests>=2\n")
    return kernel


def test_json_format(run_shim, broken_kernel: Path) -> None:
    clean = EXAMPLE_KERNELS / "iris-classifier"
    result = run_shim("validate", "--format", "json", broken_kernel, clean)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert [k["ok"] for k in report["kernels"]] == [False, True]
    by_code = {f["code"]: f for f in report["findings"]}
    assert set(by_code) == {"KS203", "KS503"}
    for finding in report["findings"]:
        assert {"code", "file", "path", "message", "expected", "fix", "title"} <= set(finding)
    assert by_code["KS203"]["file"] == str(broken_kernel / "model_metadata.json")
    assert by_code["KS203"]["path"] == "$.outputs[0].datatype"
    assert by_code["KS503"]["file"] == str(broken_kernel / "requirements.txt")
    assert by_code["KS503"]["path"] == "line 2"


def test_json_format_clean(run_shim) -> None:
    result = run_shim("validate", "--format", "json", EXAMPLE_KERNELS / "iris-classifier")
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["findings"] == []
    assert report["kernels"][0]["samples_run"] == 1


def test_github_annotations(run_shim, broken_kernel: Path) -> None:
    result = run_shim("validate", "--format", "github", broken_kernel)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    requirement = next(line for line in lines if "requirements.txt" in line)
    assert requirement.startswith(f"::error file={broken_kernel / 'requirements.txt'},line=2,title=KS503 ")
    metadata = next(line for line in lines if "model_metadata.json" in line)
    assert metadata.startswith(f"::error file={broken_kernel / 'model_metadata.json'},title=KS203 ")
    assert "::$.outputs[0].datatype: 'label' is declared INT32" in metadata
    assert lines[-1] == "0 kernel(s) valid, 1 with findings"


def test_junit_report(run_shim, broken_kernel: Path, tmp_path: Path) -> None:
    junit = tmp_path / "report.xml"
    clean = EXAMPLE_KERNELS / "two-input-ranker"
    result = run_shim("validate", "--junit", junit, broken_kernel, clean)
    assert result.returncode == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    broken = suites[str(broken_kernel)]
    assert broken.get("failures") == "2" and broken.get("tests") == "2"
    failures = {case.find("failure").get("type") for case in broken.findall("testcase")}
    assert failures == {"KS203", "KS503"}
    passing = suites[str(clean)]
    assert passing.get("failures") == "0"
    assert [case.find("failure") for case in passing.findall("testcase")] == [None]
