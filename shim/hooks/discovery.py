"""Map the files pre-commit passes (staged paths) to the kernels that contain them.

A kernel is the nearest directory, walking up from a file, that holds ``model_metadata.json``.
The walk never leaves the repository: a kernel's contract cannot come from outside the repo
being committed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from shim.spec.layout import METADATA_FILE


def repository_root(start: Path | None = None) -> Path:
    """The top of the git work tree containing ``start`` (default: the current directory).

    Falls back to ``start`` itself outside a repository or without git, so the walk still stops.
    """
    start = Path(start or Path.cwd()).absolute()
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True, check=False,
        )
    except OSError:
        return start
    top = result.stdout.strip()
    return Path(top).absolute() if result.returncode == 0 and top else start


def find_kernel_root(path: Path, stop: Path) -> Path | None:
    """The nearest directory at or above ``path`` holding model_metadata.json, not above ``stop``.

    ``path`` may no longer exist (a deleted file's kernel still gets checked if it remains).
    Both arguments must be absolute.
    """
    # A link is a file of its kernel (a finding there), never a way into another directory.
    directory = path if path.is_dir() and not path.is_symlink() else path.parent
    if not directory.is_relative_to(stop):
        return None
    while True:
        # lexists: a metadata file that is a link, FIFO or folder still marks a kernel (the check
        # reports it); is_file() would skip it and let the commit through unchecked
        if os.path.lexists(directory / METADATA_FILE):
            return directory
        if directory == stop or directory.parent == directory:
            return None
        directory = directory.parent


def _display(path: Path, cwd: Path) -> Path:
    """Relative to the working directory when inside it, as pre-commit passes paths."""
    try:
        return Path(os.path.relpath(path, cwd)) if path.is_relative_to(cwd) else path
    except ValueError:  # another drive on Windows
        return path


def kernel_roots(files: Iterable[str | Path], repo_root: Path | None = None) -> list[Path]:
    """The distinct kernels containing ``files``, in sorted order, as paths relative to the cwd."""
    cwd = Path.cwd().absolute()
    stop = Path(repo_root).absolute() if repo_root else repository_root(cwd)
    roots: set[Path] = set()
    for name in files:
        path = Path(name)
        path = path if path.is_absolute() else cwd / path
        root = find_kernel_root(Path(os.path.normpath(path)), stop)
        if root is not None:
            roots.add(root)
    return sorted(_display(root, cwd) for root in roots)
