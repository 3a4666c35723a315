"""The kernel content digest: equal for equal content wherever and whenever it was copied."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from shim.images.digest import KernelContentError, kernel_digest, kernel_files

from .conftest import EXAMPLE_KERNEL


def _copy(tmp_path: Path, name: str = "kernel") -> Path:
    return Path(shutil.copytree(EXAMPLE_KERNEL, tmp_path / name))


def test_same_content_elsewhere_with_other_mtimes_and_modes_has_the_same_digest(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    for path in copy.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
        if path.is_file():
            path.chmod(0o600)
    assert kernel_digest(copy) == kernel_digest(EXAMPLE_KERNEL)
    assert kernel_digest(copy).startswith("sha256:") and len(kernel_digest(copy)) == len("sha256:") + 64


def test_any_change_of_bytes_names_or_files_changes_the_digest(tmp_path: Path) -> None:
    original = kernel_digest(EXAMPLE_KERNEL)
    edited = _copy(tmp_path, "edited")
    metadata = edited / "model_metadata.json"
    metadata.write_bytes(metadata.read_bytes().replace(b'"0.1.0"', b'"0.1.1"'))
    renamed = _copy(tmp_path, "renamed")
    (renamed / "samples" / "example.json").rename(renamed / "samples" / "renamed.json")
    added = _copy(tmp_path, "added")
    (added / "requirements.txt").write_text("six==1.16.0\n")
    digests = {original, kernel_digest(edited), kernel_digest(renamed), kernel_digest(added)}
    assert len(digests) == 4


def test_moving_bytes_between_files_changes_the_digest(tmp_path: Path) -> None:
    # Without framing, ("a"="xy", "b"="") and ("a"="x", "b"="y") would hash the same stream.
    first, second = tmp_path / "first", tmp_path / "second"
    for root, a, b in ((first, b"xy", b""), (second, b"x", b"y")):
        root.mkdir()
        (root / "a").write_bytes(a)
        (root / "b").write_bytes(b)
    assert kernel_digest(first) != kernel_digest(second)


def test_build_by_products_are_neither_hashed_nor_listed(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0compiled")
    (copy / "stray.pyc").write_bytes(b"\0compiled")
    assert kernel_digest(copy) == kernel_digest(EXAMPLE_KERNEL)
    assert all("__pycache__" not in name and not name.endswith(".pyc") for name in kernel_files(copy))
    assert kernel_files(copy) == sorted(kernel_files(copy))


def test_a_symbolic_link_is_refused_not_followed(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    (copy / "secrets.txt").symlink_to("/etc/hostname")
    with pytest.raises(KernelContentError, match=r"secrets\.txt: is a symbolic link"):
        kernel_digest(copy)


def test_a_missing_kernel_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KernelContentError, match="not a directory"):
        kernel_files(tmp_path / "absent")
