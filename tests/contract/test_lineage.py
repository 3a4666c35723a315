"""The contract's lineage block: ``shim lineage --dvc`` records (and ``--check`` checks) a DVC md5,
``shim.lineage.capture`` records the training environment, and the validator compares that
environment with the runtime image's frozen packages (a warning, an error only under --strict)."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import edit_json, read_json

from shim.contract.validator import validate_kernel
from shim.lineage import LineageError, capture, dataset_from_dvc, dataset_from_manifest
from shim.policy.loader import load_policies

MD5 = "a304afb96060aad90176268345e10355"
DVC_FILE = f"""outs:
- md5: {MD5}
  size: 14445097
  hash: md5
  path: iris.csv
"""
DVC_LOCK = """schema: '2.0'
stages:
  prepare:
    cmd: python prepare.py
    deps:
    - path: raw/iris.csv
      md5: 11111111111111111111111111111111
      size: 10
    outs:
    - path: data/features
      md5: 22222222222222222222222222222222.dir
      size: 2048
      nfiles: 3
"""
RUNTIME_TORCH = load_policies().dependency["runtime_packages"]["torch"]


def _other_minor(version: str) -> str:
    major, minor = version.split(".")[:2]
    return f"{major}.{int(minor) + 2}.0"


def test_dvc_md5_recorded_validated_and_checked(run_shim, kernel_copy, tmp_path: Path) -> None:
    kernel = kernel_copy("iris-classifier")
    dvc = tmp_path / "iris.csv.dvc"
    dvc.write_text(DVC_FILE)
    recorded = run_shim("lineage", kernel, "--dvc", dvc)
    assert recorded.returncode == 0, recorded.output
    dataset = read_json(kernel / "model_metadata.json")["lineage"]["dataset"]
    assert dataset == {"digest": f"md5:{MD5}", "source": "dvc", "path": "iris.csv", "size": 14445097}
    assert validate_kernel(kernel).findings == []

    assert run_shim("lineage", kernel, "--dvc", dvc, "--check").returncode == 0
    dvc.write_text(DVC_FILE.replace(MD5, "b" * 32))  # the data moved on: the model is not its model
    mismatch = run_shim("lineage", kernel, "--dvc", dvc, "--check")
    assert mismatch.returncode == 1
    assert f"md5:{MD5}" in mismatch.stderr and "md5:" + "b" * 32 in mismatch.stderr


def test_dvc_lock_needs_the_dataset_path(run_shim, kernel_copy, tmp_path: Path) -> None:
    kernel = kernel_copy("iris-classifier")
    lock = tmp_path / "dvc.lock"
    lock.write_text(DVC_LOCK)
    ambiguous = run_shim("lineage", kernel, "--dvc", lock)
    assert ambiguous.returncode == 2
    assert "data/features" in ambiguous.stderr and "--dvc-path" in ambiguous.stderr
    chosen = run_shim("lineage", kernel, "--dvc", lock, "--dvc-path", "data/features")
    assert chosen.returncode == 0, chosen.output
    dataset = read_json(kernel / "model_metadata.json")["lineage"]["dataset"]
    assert dataset["digest"] == "md5:" + "2" * 32 + ".dir" and dataset["nfiles"] == 3
    assert validate_kernel(kernel).findings == []


@pytest.mark.parametrize("text", [
    "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nouts: [*c]\n",  # alias expansion
    "outs: " + "[" * 5000 + "]" * 5000 + "\n",  # nesting
    "outs:\n- path: data.csv\n  md5: not-an-md5\n",
    "outs:\n- path: data.csv\n  hash: sha256\n  sha256: abc\n",
    "just a string\n",
    "outs: {path: x}\n",
    "\x00\x01 garbage: [\n",
    "stages: []\n",
])
def test_hostile_dvc_files_are_clear_errors(text: str, tmp_path: Path) -> None:
    dvc = tmp_path / "data.dvc"
    dvc.write_text(text)
    with pytest.raises(LineageError) as caught:
        dataset_from_dvc(dvc)
    assert str(dvc) in str(caught.value)


def test_oversized_dvc_file_is_not_read(tmp_path: Path) -> None:
    dvc = tmp_path / "huge.dvc"
    dvc.write_bytes(b"#" * (2 * 1024 * 1024))
    with pytest.raises(LineageError, match="larger than"):
        dataset_from_dvc(dvc)


def test_framework_mismatch_is_a_warning_and_strict_fails(run_shim, kernel_copy, tmp_path: Path) -> None:
    """A contract claiming a torch minor version the runtime image does not freeze."""
    kernel = kernel_copy("iris-classifier")
    claimed = _other_minor(RUNTIME_TORCH)
    edit_json(kernel / "model_metadata.json", lambda m: m.update(lineage={
        "environment": {"python": "3.11.9", "frameworks": {"torch": claimed, "scikit-learn": "1.5.2"}}}))
    plain = run_shim("validate", kernel)
    assert plain.returncode == 0, plain.output
    assert "KS801 warning:" in plain.stdout and claimed in plain.stdout and RUNTIME_TORCH in plain.stdout
    strict = run_shim("validate", "--strict", kernel)
    assert strict.returncode == 1 and "KS801" in strict.stdout

    report = json.loads(run_shim("validate", "--format", "json", kernel).stdout)
    assert report["ok"] is True and report["kernels"][0]["warnings"] == 1
    (warning,) = report["findings"]
    assert warning["code"] == "KS801" and warning["severity"] == "warning"
    assert warning["path"] == "$.lineage.environment.frameworks.torch"
    assert json.loads(run_shim("validate", "--format", "json", "--strict", kernel).stdout)["ok"] is False

    github = run_shim("validate", "--format", "github", kernel).stdout
    assert github.splitlines()[0].startswith("::warning file=")
    assert run_shim("validate", "--format", "github", "--strict", kernel).stdout.startswith("::error file=")

    junit = tmp_path / "junit.xml"
    run_shim("validate", "--junit", junit, kernel)
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.find("testcase").get("severity") == "warning"
    run_shim("validate", "--strict", "--junit", junit, kernel)
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "1"


def test_hook_strict_flag(run_shim, kernel_copy) -> None:
    kernel = kernel_copy("iris-classifier")
    edit_json(kernel / "model_metadata.json", lambda m: m.update(lineage={
        "environment": {"python": "3.11.9", "frameworks": {"torch": _other_minor(RUNTIME_TORCH)}}}))
    first = run_shim("hook", "validate", "model_metadata.json", cwd=kernel)
    assert first.returncode == 0 and "KS801 warning:" in first.stdout, first.output
    cached_strict = run_shim("hook", "validate", "--strict", "model_metadata.json", cwd=kernel)
    assert "served from cache" in cached_strict.stdout
    assert cached_strict.returncode == 1 and "KS801 warning:" in cached_strict.stdout


def test_capture_records_this_environment(kernel_copy, tmp_path: Path) -> None:
    import torch  # the training script imported it: capture reads CUDA details from it

    repo = tmp_path / "training"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "train.py").write_text("print('train')\n")
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "train"], check=True)
    subprocess.run([*git, "remote", "add", "origin", "https://git.example.com/ds/iris.git"], check=True)
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("iris.csv 5f2b...\n")

    kernel = kernel_copy("iris-classifier")
    lineage = capture(kernel, code=repo, dataset=dataset_from_manifest(manifest),
                      evaluation=[{"metric": "accuracy", "value": 0.96, "split": "test"}])
    environment = lineage["environment"]
    assert environment["frameworks"]["torch"] == torch.__version__.split("+")[0] or \
        environment["frameworks"]["torch"] == torch.__version__
    assert environment["python"].startswith("3.")
    assert ("cuda" in environment) == torch.cuda.is_available()
    assert lineage["code"]["repository"] == "https://git.example.com/ds/iris.git"
    assert len(lineage["code"]["commit"]) == 40 and lineage["code"]["dirty"] is False
    assert read_json(kernel / "model_metadata.json")["lineage"] == lineage
    report = validate_kernel(kernel)
    assert report.findings == [], "\n".join(f.render() for f in report.findings)

    (repo / "train.py").write_text("print('changed')\n")
    capture(kernel, code=repo)
    codes = {(f.code, f.severity) for f in validate_kernel(kernel).findings}
    assert codes == {("KS803", "warning")}


@pytest.mark.parametrize("lineage, path", [
    ({"dataset": {"digest": f"md5:{MD5}", "source": "manifest"}}, "$.lineage.dataset.digest"),
    ({"dataset": {"digest": f"md5:{MD5}", "source": "dvc", "nfiles": 2}}, "$.lineage.dataset.nfiles"),
    ({"dataset": {"digest": f"md5:{MD5}", "source": "dvc", "uri": "s3://other/"}}, "$.lineage.dataset.uri"),
    ({"evaluation": [{"metric": "f1", "value": 0.8, "split": "test"},
                     {"metric": "f1", "value": 0.9, "split": "test"}]}, "$.lineage.evaluation[1]"),
])
def test_inconsistent_lineage_is_an_error(kernel_copy, lineage: dict, path: str) -> None:
    kernel = kernel_copy("iris-classifier")
    edit_json(kernel / "model_metadata.json", lambda m: m.update(lineage=lineage))
    report = validate_kernel(kernel)
    assert [(f.code, f.path, f.severity) for f in report.findings] == [("KS802", path, "error")]
    assert not report.ok


@pytest.mark.parametrize("lineage, path", [
    ({"dataset": {"digest": "md5:xyz", "source": "dvc"}}, "$.lineage.dataset.digest"),
    ({"code": {"repository": "not a url", "commit": "a" * 40}}, "$.lineage.code.repository"),
    ({"code": {"repository": "https://x.example/r.git", "commit": "abc"}}, "$.lineage.code.commit"),
    ({"environment": {"python": "3.11", "frameworks": {}, "gpu": "H100"}}, "$.lineage.environment"),
    ({"evaluation": [{"metric": "f1", "value": 0.8}]}, "$.lineage.evaluation[0]"),
])
def test_lineage_formats_are_schema_checked(kernel_copy, lineage: dict, path: str) -> None:
    kernel = kernel_copy("iris-classifier")
    edit_json(kernel / "model_metadata.json", lambda m: m.update(lineage=lineage))
    findings = validate_kernel(kernel).findings
    assert [(f.code, f.path) for f in findings] == [("KS004", path)], [f.render() for f in findings]

