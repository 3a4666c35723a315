"""Reading a kernel's files without ever following a link or blocking on a special file.

Every check that reads kernel content goes through ``read_regular``: the file is opened with
``O_NOFOLLOW | O_NONBLOCK`` and ``fstat``-ed on the open descriptor, so a symbolic link (to
``/proc/self/environ``, say) or a FIFO is refused at the moment of opening, not by an earlier
``is_symlink()`` that a later check could forget or that a swapped file could race. The size cap
is checked on the descriptor too, so a file cannot be larger than its role allows when read.

A regular file with more than one hard link is refused the same way: a hard link is a second name
for an inode that may live outside the kernel (``ln /etc/passwd requirements.txt`` needs no
privilege on the same file system), and checks echo parts of the files they read (a requirement
line, a metadata value). Nothing that writes kernels (git, copies, archives) creates hard links.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(
    os, "O_CLOEXEC", 0
)


#: Largest handler source read (the artifact policy's role_limits.handler applies too).
MAX_HANDLER_BYTES = 1024 * 1024


class KernelFileError(Exception):
    """The file is not a readable regular file within its size cap; the message says which."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        #: "missing", "link", "hardlink", "special", "too-large" or "unreadable"
        self.kind = kind


def open_regular(path: Path | str) -> int:
    """A descriptor for ``path`` if it is a regular file (never through a symbolic link)."""
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise KernelFileError("does not exist", "missing") from None
    except OSError as exc:
        if os.path.islink(path):
            raise KernelFileError("is a symbolic link (never followed)", "link") from None
        raise KernelFileError(f"cannot be opened ({exc.strerror})", "unreadable") from None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a special file (device, FIFO or socket)"
        raise KernelFileError(f"is {kind}, not a regular file", "special")
    if info.st_nlink > 1:
        os.close(descriptor)
        raise KernelFileError(
            f"has {info.st_nlink} hard links (another name for a file that may be outside the kernel); "
            "it is never read", "hardlink")
    return descriptor


def read_regular(path: Path | str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; ``KernelFileError`` otherwise."""
    descriptor = open_regular(path)
    try:
        size = os.fstat(descriptor).st_size
        if size > max_bytes:
            raise KernelFileError(f"is {size:,} bytes; at most {max_bytes:,} are allowed here", "too-large")
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:  # grew while being read
        raise KernelFileError(f"is over {max_bytes:,} bytes; at most {max_bytes:,} are allowed here",
                              "too-large")
    return data


def is_regular_file(path: Path | str) -> bool:
    """True for a regular file that is not a symbolic link (``lstat``: never follows links)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
