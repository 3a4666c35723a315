"""Shared fixtures for the Ops-side tests: a kernel in a temp dir, the terraform binary, checkov."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PLANS = FIXTURES / "plans"
MODULES = REPO / "terraform" / "modules"
EXAMPLES = REPO / "terraform" / "examples"
DIGEST = "sha256:" + "3f" * 32
IMAGE = f"registry.example.com/models/iris-classifier@{DIGEST}"
ECR_IMAGE = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/models/iris-classifier@{DIGEST}"
ON_CI = os.environ.get("CI", "").lower() == "true"

METADATA = {
    "contract_version": "1",
    "name": "iris-classifier",
    "version": "0.1.0",
    "framework": "onnx",
    "model_file": "model.onnx",
    "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
    "created_at": "2026-11-01T09:00:00Z",
    "created_by": "data-science@example.com",
    "training_dataset": "https://archive.ics.uci.edu/dataset/53/iris",
    "cost_center": "cc-ml-4711",
    "batching": {"max_batch_size": 64, "max_queue_delay_us": 200},
    "labels": {"data-classification": "internal", "team": "ds-core"},
    "resources": {"cpu": "2", "memory": "1Gi", "gpu": 1},
}


def missing_tool(reason: str) -> None:
    """Skip, except on CI where the Terraform tools must be there (brief: fail instead of skip)."""
    if ON_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture
def make_kernel(tmp_path: Path):
    """Write a kernel (model_metadata.json only: the tfvars need nothing else) and return its dir."""

    def make(name: str = "kernel", **changes) -> Path:
        metadata = copy.deepcopy(METADATA)
        for key, value in changes.items():
            if value is None:
                metadata.pop(key, None)
            else:
                metadata[key] = value
        root = tmp_path / name
        root.mkdir()
        (root / "model_metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
        return root

    return make


@pytest.fixture
def terraform():
    """The terraform/tofu binary the runner would use."""
    from shim.iac.terraform_binary import TerraformNotFound, find_terraform

    try:
        return find_terraform()
    except TerraformNotFound as exc:
        missing_tool(str(exc))


def checkov_command() -> list[str] | None:
    for candidate in (
        os.environ.get("KERNELSHIM_CHECKOV"),
        shutil.which("checkov"),
        str(REPO / ".cache" / "checkov-venv" / "bin" / "checkov"),
    ):
        if candidate and Path(candidate).is_file():
            return [candidate]
    return None


@pytest.fixture
def checkov() -> list[str]:
    command = checkov_command()
    if command is None:
        missing_tool("checkov is not installed (run .ci/install-checkov.sh, or set KERNELSHIM_CHECKOV)")
    return command


def shim(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (the runner streams terraform's output to real file descriptors)."""
    return subprocess.run(
        [sys.executable, "-m", "shim.cli.main", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def load_plan_fixture(name: str) -> dict:
    return json.loads((PLANS / name).read_text(encoding="utf-8"))
