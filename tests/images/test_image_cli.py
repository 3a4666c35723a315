"""`shim image` errors that need no engine: one clear line and an exit code, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import EXAMPLE_KERNEL, TEST_CA


def _shim(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shim.cli.main", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **env}, check=False,
    )


def _one_clean_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    return result.stderr


def test_no_reachable_engine_says_where_it_looked_and_how_to_start_one(tmp_path: Path) -> None:
    socket = f"unix://{tmp_path}/nothing-here.sock"
    for args in (
        ("image", "build", str(EXAMPLE_KERNEL), "--runtime-image", "localhost/kernelshim/level1-runtime:cpu"),
        ("image", "build-base", "--level", "0", "--no-ca-bundle"),
    ):
        result = _shim(*args, DOCKER_HOST=socket)
        assert result.returncode == 1
        error = _one_clean_error(result)
        assert f"no container engine answers at DOCKER_HOST={socket}" in error
        assert "podman system service" in error and "export DOCKER_HOST=" in error
        assert len(error.strip().splitlines()) == 1


def test_missing_kernel_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = _shim("image", "build", str(tmp_path / "absent"), "--runtime-image", "x")
    assert result.returncode == 2
    assert "no such kernel directory" in _one_clean_error(result)


def test_kernel_with_broken_metadata_is_refused_before_any_build(tmp_path: Path) -> None:
    kernel = Path(shutil.copytree(EXAMPLE_KERNEL, tmp_path / "kernel"))
    metadata = json.loads((kernel / "model_metadata.json").read_text())
    metadata["version"] = "not a version"
    (kernel / "model_metadata.json").write_text(json.dumps(metadata))
    # No engine at this socket: the metadata is checked first, so the engine is never needed.
    result = _shim("image", "build", str(kernel), "--runtime-image", "x", DOCKER_HOST=f"unix://{tmp_path}/none")
    assert result.returncode == 1
    error = _one_clean_error(result)
    assert "model_metadata.json:$.version: KS004" in error
    assert "cannot build an image of a kernel whose metadata does not satisfy the contract" in error


def test_level_specific_options_are_checked(tmp_path: Path) -> None:
    wrong_level = _shim("image", "build-base", "--level", "1", "--ca-bundle", str(TEST_CA))
    assert wrong_level.returncode == 2 and "belong to --level 0" in _one_clean_error(wrong_level)
    missing = _shim("image", "build-base", "--level", "0", "--ca-bundle", str(tmp_path / "absent.pem"))
    assert missing.returncode == 2 and "--ca-bundle: no such file" in _one_clean_error(missing)
    wheel = _shim("image", "build-base", "--level", "0", "--kernelshim-wheel", str(TEST_CA))
    assert wheel.returncode == 2 and "belong to --level 1" in _one_clean_error(wheel)


def test_a_ca_bundle_that_is_not_pem_is_named(tmp_path: Path) -> None:
    der = tmp_path / "corp.cer"
    der.write_bytes(b"\x30\x82 binary")
    # Checked before the engine is contacted (there is none at this socket).
    result = _shim("image", "build-base", "--level", "0", "--ca-bundle", str(der), DOCKER_HOST=f"unix://{tmp_path}/x")
    assert result.returncode == 2
    assert f"{der}: holds no PEM certificate" in _one_clean_error(result)
