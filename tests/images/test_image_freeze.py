"""Level 1's frozen requirement files are generated from the dependency policy, never hand-edited."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shim.images.freeze import FreezeError, frozen_files, stale_frozen_files
from shim.policy.loader import load_policies

from .conftest import REPO

RUNTIME_DIR = REPO / "images" / "level1-runtime"


def _shim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shim.cli.main", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_committed_frozen_files_match_the_policy() -> None:
    expected = frozen_files(load_policies().dependency["runtime_packages"])
    stale = stale_frozen_files(expected, RUNTIME_DIR)
    assert not stale, f"{stale} differ from policies/dependency_policy.yaml: run `shim image freeze`"


def _pins(files, name: str) -> list[str]:
    text = next(item.text for item in files if item.name == name)
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_every_policy_pin_lands_in_exactly_one_group() -> None:
    runtime = dict(load_policies().dependency["runtime_packages"])
    files = frozen_files(runtime)
    names = ("requirements-frozen.txt", "requirements-frozen-cpu.txt", "requirements-frozen-gpu.txt",
             "requirements-frozen-torch.txt")
    lines = [line for name in names for line in _pins(files, name)]
    runtime.setdefault("onnxruntime-gpu", runtime["onnxruntime"])
    assert sorted(lines) == sorted(f"{name}=={version}" for name, version in runtime.items())


def test_the_gpu_build_follows_onnxruntime_unless_the_policy_pins_it() -> None:
    same = frozen_files({"onnxruntime": "1.32.0"})
    assert _pins(same, "requirements-frozen-gpu.txt") == ["onnxruntime-gpu==1.32.0"]
    lagging = frozen_files({"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"})
    assert _pins(lagging, "requirements-frozen-gpu.txt") == ["onnxruntime-gpu==1.31.1"]
    assert _pins(lagging, "requirements-frozen-cpu.txt") == ["onnxruntime==1.32.0"]
    assert _pins(lagging, "requirements-frozen.txt") == []


def _policy_dir(tmp_path: Path, **pins: str | None) -> Path:
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    data = yaml.safe_load((REPO / "policies" / "dependency_policy.yaml").read_text())
    for name, version in pins.items():
        if version is None:
            data["runtime_packages"].pop(name)
        else:
            data["runtime_packages"][name] = version
    (policy_dir / "dependency_policy.yaml").write_text(yaml.safe_dump(data))
    return policy_dir


def test_check_fails_when_the_policy_moves_a_pin_and_freeze_repairs_it(tmp_path: Path) -> None:
    policy_dir = _policy_dir(tmp_path, numpy="2.4.7")
    output_dir = tmp_path / "runtime"
    shutil.copytree(RUNTIME_DIR, output_dir)

    where = ("--policy-dir", str(policy_dir), "--output-dir", str(output_dir))
    check = _shim("image", "freeze", "--check", *where)
    assert check.returncode == 1
    assert "requirements-frozen.txt: out of date" in check.stderr and "shim image freeze" in check.stderr
    assert "requirements-frozen-cpu.txt" not in check.stderr

    write = _shim("image", "freeze", *where)
    assert write.returncode == 0, write.stderr
    assert "numpy==2.4.7" in (output_dir / "requirements-frozen.txt").read_text().splitlines()
    again = _shim("image", "freeze", "--check", *where)
    assert again.returncode == 0, again.stderr


def test_a_policy_without_onnxruntime_cannot_be_frozen() -> None:
    with pytest.raises(FreezeError, match="runtime_packages has no 'onnxruntime'"):
        frozen_files({"numpy": "2.4.6"})


def test_a_policy_without_torch_freezes_an_empty_torch_group() -> None:
    files = {f.name: f for f in frozen_files({"onnxruntime": "1.32.0"})}
    torch_file = files["requirements-frozen-torch.txt"]
    assert [line for line in torch_file.text.splitlines() if not line.startswith("#")] == []
