"""Staged paths -> kernel roots: the nearest model_metadata.json above a file, never above the repo."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from shim.hooks.discovery import find_kernel_root, kernel_roots, repository_root


def make_kernel(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model_metadata.json").write_text("{}\n")
    return directory


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git work tree nested in a directory that itself looks like a kernel (it must be ignored)."""
    make_kernel(tmp_path)  # above the repository: never a kernel for the repo's files
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    monkeypatch.chdir(root)
    return root


def test_files_map_to_their_nearest_kernel(repo: Path) -> None:
    iris = make_kernel(repo / "kernels" / "iris")
    nested = make_kernel(repo / "kernels" / "iris" / "variants" / "small")
    (repo / "kernels" / "iris" / "samples").mkdir()
    files = [
        "kernels/iris/model.onnx",
        "kernels/iris/samples/example.json",
        "kernels/iris/variants/small/model.onnx",
        "kernels/iris/model_metadata.json",
        "README.md",  # not in a kernel
        "kernels/notes.txt",  # not in a kernel
    ]
    assert kernel_roots(files) == [Path("kernels/iris"), Path("kernels/iris/variants/small")]
    assert find_kernel_root(repo / "kernels/iris/samples/example.json", repo) == iris
    assert find_kernel_root(nested / "deep" / "file", repo) == nested


def test_walk_stops_at_the_repository_root(repo: Path) -> None:
    (repo / "src").mkdir()
    assert repository_root(repo / "src") == repo.resolve()
    assert kernel_roots(["src/train.py", "setup.cfg"]) == []


def test_a_kernel_at_the_repository_root(repo: Path) -> None:
    make_kernel(repo)
    assert kernel_roots(["model.onnx", "samples/example.json"]) == [Path(".")]


def test_deleted_files_still_select_their_kernel(repo: Path) -> None:
    make_kernel(repo / "k")
    assert kernel_roots(["k/samples/removed.json"]) == [Path("k")]


def test_paths_outside_the_repository_are_ignored(repo: Path, tmp_path: Path) -> None:
    outside = make_kernel(tmp_path / "elsewhere")
    assert kernel_roots([outside / "model.onnx"]) == []


def test_absolute_paths_inside_are_shown_relative(repo: Path) -> None:
    make_kernel(repo / "k")
    assert kernel_roots([repo / "k" / "model.onnx"]) == [Path("k")]


def test_without_git_the_working_directory_bounds_the_walk(tmp_path: Path, monkeypatch) -> None:
    make_kernel(tmp_path)
    work = tmp_path / "plain"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert repository_root() == Path(os.getcwd())
    assert kernel_roots(["x.txt"]) == []


def test_a_link_to_another_kernel_selects_the_kernel_holding_the_link(repo: Path, tmp_path: Path) -> None:
    make_kernel(repo / "k")
    elsewhere = make_kernel(tmp_path / "elsewhere")
    (repo / "k" / "shortcut").symlink_to(elsewhere, target_is_directory=True)
    assert kernel_roots(["k/shortcut"]) == [Path("k")]
