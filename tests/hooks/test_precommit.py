"""pre-commit end to end, with real ``git`` and real ``pre-commit``.

A data scientist's repository uses this repository's published hooks (.pre-commit-hooks.yaml) the
way any user would: ``repo:`` + ``rev:``. pre-commit clones that commit, builds a virtualenv and
pip-installs kernelshim into it, exactly as on a laptop. The hooks must come from *this* working
tree (including uncommitted edits), so the tree is first snapshotted into a throw-away git repo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLE_KERNELS, REPO, edit_json

PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


def git(*args: str, cwd: Path) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main", cwd=path)
    git("config", "user.name", "Test Scientist", cwd=path)
    git("config", "user.email", "scientist@example.com", cwd=path)
    git("config", "commit.gpgsign", "false", cwd=path)
    return path


def snapshot_of_this_checkout(destination: Path) -> str:
    """Commit the checkout's tracked and untracked (not ignored) files into a new repo; return the sha."""
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO).split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    init_repo(destination)
    git("add", "-A", cwd=destination)
    git("commit", "-q", "-m", "kernelshim snapshot", cwd=destination)
    return git("rev-parse", "HEAD", cwd=destination)


@pytest.fixture
def precommit_env(tmp_path: Path, shim_env: dict[str, str]) -> dict[str, str]:
    env = dict(shim_env)
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    env.pop("PRE_COMMIT_ALLOW_NO_CONFIG", None)
    env.pop("SKIP", None)
    return env


def commit(repo: Path, env: dict[str, str], message: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "commit", "-m", message], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.mark.slow
def test_commit_of_a_broken_kernel_fails_until_fixed(tmp_path: Path, precommit_env: dict[str, str]) -> None:
    sha = snapshot_of_this_checkout(tmp_path / "kernelshim")
    repo = init_repo(tmp_path / "models")
    config = {"repos": [{
        "repo": str(tmp_path / "kernelshim"), "rev": sha,
        "hooks": [{"id": "kernel-validate"}, {"id": "kernel-dependencies"}, {"id": "kernel-no-pickle"}],
    }]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    installed = subprocess.run([*PRE_COMMIT, "install"], cwd=repo, env=precommit_env, capture_output=True,
                               text=True, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    kernel = repo / "kernels" / "iris"
    shutil.copytree(EXAMPLE_KERNELS / "iris-classifier", kernel)
    edit_json(kernel / "model_metadata.json", lambda m: m["outputs"][1].__setitem__("datatype", "FP16"))
    (kernel / "requirements.txt").write_text("requests>=2\n")
    git("add", "-A", cwd=repo)
    blocked = commit(repo, precommit_env, "add iris")
    output = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, output
    assert "kernels/iris/model_metadata.json:$.outputs[1].datatype: KS203" in output
    assert "kernels/iris/requirements.txt:line 1: KS503 requests is not pinned" in output
    assert "kernel contract (shim validate)" in output and "Failed" in output
    with pytest.raises(subprocess.CalledProcessError):
        git("rev-parse", "--verify", "HEAD", cwd=repo)  # nothing was committed

    edit_json(kernel / "model_metadata.json", lambda m: m["outputs"][1].__setitem__("datatype", "FP32"))
    (kernel / "requirements.txt").write_text("requests==2.32.3\n")
    git("add", "-A", cwd=repo)
    accepted = commit(repo, precommit_env, "add iris")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert git("log", "--format=%s", cwd=repo) == "add iris"

    # a pickle sneaking in later is caught by kernel-no-pickle (and kernel-validate)
    from kernel_fixtures import malicious_pickle

    (kernel / "labels.dat").write_bytes(malicious_pickle())
    git("add", "-A", cwd=repo)
    pickled = commit(repo, precommit_env, "add labels")
    output = pickled.stdout + pickled.stderr  # git shows the hooks' output on stderr
    assert pickled.returncode != 0
    assert "kernels/iris/labels.dat: KS403 is a pickle that would call posix.system" in output
    assert "kernel artifacts (deny by default, no executable pickles)" in output


def test_hook_manifest_and_project_config_are_valid() -> None:
    for command, name in (("validate-manifest", ".pre-commit-hooks.yaml"),
                          ("validate-config", ".pre-commit-config.yaml")):
        result = subprocess.run([*PRE_COMMIT, command, str(REPO / name)], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    published = {hook["id"]: hook for hook in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    assert set(published) >= {"kernel-validate", "kernel-dependencies", "kernel-no-pickle"}
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    local = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert "ruff" in local
    for hook_id in ("kernel-validate", "kernel-dependencies", "kernel-no-pickle"):
        assert local[hook_id]["entry"] == published[hook_id]["entry"]
        assert local[hook_id]["files"].startswith("^examples/kernels/")


def test_project_config_runs_the_kernel_hooks_on_the_examples(precommit_env: dict[str, str]) -> None:
    """This repository's own .pre-commit-config.yaml (local, system hooks) passes on examples/kernels/."""
    env = {**precommit_env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{precommit_env['PATH']}"}
    files = sorted(str(p.relative_to(REPO)) for p in EXAMPLE_KERNELS.rglob("*") if p.is_file())
    for hook_id in ("kernel-validate", "kernel-dependencies", "kernel-no-pickle"):
        result = subprocess.run([*PRE_COMMIT, "run", hook_id, "--files", *files], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Passed" in result.stdout
