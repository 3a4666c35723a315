"""A content digest of a kernel: what the Level-2 image's ``dev.kernelshim.kernel.digest`` says.

It covers exactly the files the image receives (``kernel_files``): their sorted relative paths
and bytes, nothing else. Modification times, ownership and the directory's own location do not
count, so the same kernel checked out anywhere, at any time, gives the same digest, and the
label tells which kernel content a running image carries.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Build and editor by-products that are never part of a kernel (and never copied into an image).
IGNORED_NAMES = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".pytest_cache", ".DS_Store"})
IGNORED_SUFFIXES = (".pyc", ".pyo")
_CHUNK = 1 << 20


class KernelContentError(Exception):
    """The kernel directory holds something that cannot go into an image as-is."""


def kernel_files(root: Path) -> list[str]:
    """Relative POSIX paths of the kernel's regular files, sorted, by-products left out.

    Symbolic links and special files are refused rather than followed: the artifact policy
    forbids them, and following one could copy a file from outside the kernel into the image.
    """
    root = Path(root)
    if not root.is_dir():
        raise KernelContentError(f"{root}: not a directory")
    found: list[str] = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part in IGNORED_NAMES for part in relative.parts) or path.name.endswith(IGNORED_SUFFIXES):
            continue
        if path.is_symlink():
            raise KernelContentError(
                f"{path}: is a symbolic link; a kernel must hold plain files only "
                "(replace the link with the file it points to)"
            )
        if path.is_dir():
            continue
        if not path.is_file():
            raise KernelContentError(f"{path}: is not a regular file (a device, socket or FIFO); remove it")
        found.append(relative.as_posix())
    return sorted(found)


def kernel_digest(root: Path) -> str:
    """``sha256:<hex>`` over each file's relative path, size and bytes, in sorted path order.

    Path and size are framed with NUL bytes so no two different kernels can produce the same
    byte stream (a file's tail cannot masquerade as the next file's name).
    """
    root = Path(root)
    digest = hashlib.sha256()
    for relative in kernel_files(root):
        path = root / relative
        digest.update(relative.encode("utf-8") + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"
