"""Fixtures shared across the test suite: example kernels copied for mutation, and ``shim`` run
as a real subprocess (the console script's module), with the hooks' cache in a temp directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_KERNELS = REPO / "examples" / "kernels"
SHIM_COMMAND = [sys.executable, "-m", "shim.cli.main"]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def edit_json(path: Path, change: Callable[[Any], object]) -> None:
    """Load, let ``change`` mutate the data in place (its return value is ignored), write back."""
    data = read_json(path)
    change(data)
    write_json(path, data)


@pytest.fixture
def kernel_copy(tmp_path: Path) -> Callable[[str], Path]:
    """``kernel_copy("iris-classifier")`` -> a private copy of that example kernel to mutate."""
    counter = iter(range(1000))

    def copy(name: str, destination: Path | None = None) -> Path:
        target = destination or tmp_path / f"{name}-{next(counter)}"
        shutil.copytree(EXAMPLE_KERNELS / name, target, symlinks=True)
        return target

    return copy


@pytest.fixture
def shim_env(tmp_path: Path) -> dict[str, str]:
    """Environment for ``shim`` subprocesses: the hooks' result cache lives in this test's tmp dir."""
    env = dict(os.environ)
    env["KERNELSHIM_CACHE_DIR"] = str(tmp_path / "kernelshim-cache")
    env.pop("KERNELSHIM_POLICY_DIR", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def run_shim(shim_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``shim ARGS...`` as a real process; ``result.output`` is stdout followed by stderr."""

    def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*SHIM_COMMAND, *map(str, args)], cwd=cwd or REPO, env=env or shim_env,
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        result.output = result.stdout + result.stderr  # type: ignore[attr-defined]
        assert "Traceback" not in result.output, result.output
        return result

    return run


#: What a CPU torch install puts into site-packages.
TORCH_DISTRIBUTIONS = {"torch", "functorch", "torchgen"}


@pytest.fixture(scope="session")
def python_without_torch(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, str]]:
    """A real interpreter environment in which torch is not installed (nothing is faked).

    It sees this venv's site-packages through a directory of links to every entry except torch's,
    with ``-S`` so the real site-packages is not added. Returns (command prefix, environment).
    """
    import sysconfig

    site_packages = Path(sysconfig.get_paths()["purelib"])
    farm = tmp_path_factory.mktemp("site-without-torch")
    for entry in site_packages.iterdir():
        distribution = entry.name.split("-")[0].split(".")[0].lower()
        skipped = entry.suffix == ".pth" or entry.name.startswith("__editable__")
        if distribution in TORCH_DISTRIBUTIONS or skipped:
            continue
        (farm / entry.name).symlink_to(entry)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(farm)])
    env["KERNELSHIM_CACHE_DIR"] = str(farm.parent / "cache-without-torch")
    command = [sys.executable, "-S", "-m", "shim.cli.main"]
    probe = subprocess.run([sys.executable, "-S", "-c", "import onnxruntime, jsonschema\nimport torch"],
                           env=env, capture_output=True, text=True, check=False)
    assert "No module named 'torch'" in probe.stderr, probe.stderr
    return command, env
