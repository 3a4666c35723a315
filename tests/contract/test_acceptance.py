"""Issue 2's acceptance list, each bullet through the real ``shim validate`` process: exit 1 and
a message that names the file and the field or line."""

from __future__ import annotations

from pathlib import Path

from conftest import EXAMPLE_KERNELS, REPO, edit_json
from kernel_fixtures import malicious_pickle, policy_override


def _finding_lines(output: str, code: str) -> list[str]:
    return [line for line in output.splitlines() if f": {code} " in line]


def assert_reported(result, code: str, file: Path, where: str) -> str:
    """Exit 1, and a finding line ``FILE:WHERE: CODE message``; returns that line."""
    assert result.returncode == 1, result.output
    lines = [line for line in _finding_lines(result.stdout, code) if line.startswith(f"{file}:{where}")]
    assert lines, f"no {code} at {file}:{where} in:\n{result.output}"
    return lines[0]


def test_examples_validate_clean(run_shim) -> None:
    kernels = sorted(EXAMPLE_KERNELS.iterdir())
    assert len(kernels) >= 3
    result = run_shim("validate", *kernels)
    assert result.returncode == 0, result.output
    assert f"{len(kernels)} kernel(s) valid, 0 with findings" in result.stdout


def test_missing_required_field(run_shim, kernel_copy) -> None:
    kernel = kernel_copy("iris-classifier")
    edit_json(kernel / "model_metadata.json", lambda m: m.pop("training_dataset"))
    line = assert_reported(run_shim("validate", kernel), "KS004", kernel / "model_metadata.json", "$")
    assert "'training_dataset' is a required property" in line


def test_output_datatype_differs_from_graph(run_shim, kernel_copy) -> None:
    kernel = kernel_copy("iris-classifier")
    edit_json(kernel / "model_metadata.json", lambda m: m["outputs"][1].__setitem__("datatype", "FP64"))
    result = run_shim("validate", kernel)
    line = assert_reported(result, "KS203", kernel / "model_metadata.json", "$.outputs[1].datatype")
    assert "'probabilities' is declared FP64 but the model's element type is FLOAT" in line
    assert "fix: set datatype to FP32" in result.stdout


def test_static_dimension_differs(run_shim, kernel_copy) -> None:
    kernel = kernel_copy("two-input-ranker")
    edit_json(kernel / "model_metadata.json", lambda m: m["inputs"][0].__setitem__("shape", [-1, 5]))
    result = run_shim("validate", kernel)
    line = assert_reported(result, "KS205", kernel / "model_metadata.json", "$.inputs[0].shape[1]")
    assert "declared 5 but the model has 4" in line


def test_unpinned_requirements(run_shim, kernel_copy) -> None:
    kernel = kernel_copy("iris-classifier")
    (kernel / "requirements.txt").write_text("requests>=2\nnumpy\n")
    result = run_shim("validate", kernel)
    requirements = kernel / "requirements.txt"
    assert "requests is not pinned" in assert_reported(result, "KS503", requirements, "line 1")
    # numpy is also a Level-1 package: it is reported for that, pinned or not.
    assert "numpy is provided by the Level-1 runtime image" in assert_reported(result, "KS504", requirements,
                                                                                  "line 2")


def test_git_url_requirement(run_shim, kernel_copy) -> None:
    kernel = kernel_copy("iris-classifier")
    (kernel / "requirements.txt").write_text("six==1.16.0\ngit+https://github.com/psf/requests.git@v2.32.3\n")
    line = assert_reported(run_shim("validate", kernel), "KS502", kernel / "requirements.txt", "line 2")
    assert "git+https://github.com/psf/requests.git@v2.32.3" in line


def test_level1_package_in_requirements(run_shim, kernel_copy) -> None:
    kernel = kernel_copy("torchscript-mlp")
    (kernel / "requirements.txt").write_text("six==1.16.0\ntorch==2.1.0\n")
    line = assert_reported(run_shim("validate", kernel), "KS504", kernel / "requirements.txt", "line 2")
    assert "torch is provided by the Level-1 runtime image" in line


def test_pickle_calling_os_system(run_shim, kernel_copy) -> None:
    kernel = kernel_copy("iris-classifier")
    (kernel / "preprocess_state.pkl").write_bytes(malicious_pickle())
    result = run_shim("validate", kernel)
    line = assert_reported(result, "KS403", kernel / "preprocess_state.pkl", "")
    assert "system" in line  # posix.system on Linux: what os.system pickles as
    assert_reported(result, "KS402", kernel / "preprocess_state.pkl", "")


def test_wrong_golden_expected_output(run_shim, kernel_copy) -> None:
    kernel = kernel_copy("iris-classifier")
    edit_json(kernel / "samples" / "example.json",
              lambda s: s["expected"]["outputs"][0]["data"].__setitem__(1, 2))
    result = run_shim("validate", kernel)
    sample = kernel / "samples" / "example.json"
    line = assert_reported(result, "KS305", sample, "$.expected.outputs[0].data[1]")
    assert "output 'label'" in line and "got 0.0, expected 2.0" in line


def test_kernel_over_size_cap(run_shim, kernel_copy, tmp_path: Path) -> None:
    kernel = kernel_copy("iris-classifier")
    policies = policy_override(tmp_path / "policies", max_kernel_size_bytes=2048)
    result = run_shim("validate", "--policy-dir", policies, kernel)
    line = assert_reported(result, "KS401", kernel, "")
    assert "the cap is 2,048 bytes" in line


def test_usage_errors_exit_2(run_shim, tmp_path: Path) -> None:
    missing = run_shim("validate", tmp_path / "nope")
    assert missing.returncode == 2 and "no such kernel directory" in missing.stderr
    bad_format = run_shim("validate", "--format", "yaml", REPO / "examples" / "kernels" / "iris-classifier")
    assert bad_format.returncode == 2
    bad_policy = run_shim("validate", "--policy-dir", tmp_path / "none", REPO / "examples" / "kernels")
    assert bad_policy.returncode == 2 and "policy directory does not exist" in bad_policy.stderr
