"""Every entry of a kernel directory, from ``lstat`` alone: nothing is opened or followed.

The walk is bounded: it descends only into the folders the layout allows (``samples/``), stops
after ``max_entries`` entries, and records links and special files (devices, FIFOs, sockets) by
kind so that no later check ever opens them. Names are kept as the file system gives them
(undecodable bytes as surrogates) and shown escaped, so a name with a newline or a terminal
escape cannot forge lines in a report.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FILE, DIRECTORY, LINK, SPECIAL = "file", "directory", "link", "special"


@dataclass(frozen=True)
class Entry:
    relative: str
    kind: str
    size: int = 0
    #: hard links to the file (``st_nlink``); more than one is refused, never read
    links: int = 1


@dataclass
class Inventory:
    root: Path
    entries: list[Entry]
    #: True when the walk stopped at the entry cap
    truncated: bool = False

    def files(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == FILE]

    def get(self, relative: str) -> Entry | None:
        return next((e for e in self.entries if e.relative == relative), None)


def display_name(relative: str) -> str:
    """The name with control characters, undecodable bytes and backslashes escaped."""
    if relative.isprintable() and "\\" not in relative:
        return relative
    return relative.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace").translate(
        {i: f"\\x{i:02x}" for i in range(32)} | {127: "\\x7f"}
    )


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return LINK
    if stat.S_ISDIR(mode):
        return DIRECTORY
    if stat.S_ISREG(mode):
        return FILE
    return SPECIAL


def walk(root: Path, max_entries: int, descend: Callable[[str], bool]) -> Inventory:
    """Entries under ``root`` in sorted order; folders for which ``descend`` says no are listed but
    not entered (the layout refuses them whole)."""
    inventory = Inventory(Path(root), [])
    pending = [""]
    while pending:
        folder = pending.pop(0)
        try:
            with os.scandir(Path(root, folder)) as iterator:
                names = []
                for item in iterator:
                    names.append(item)
                    if len(inventory.entries) + len(names) > max_entries:
                        break
        except OSError:
            continue
        for item in sorted(names, key=lambda i: i.name):
            relative = f"{folder}/{item.name}" if folder else item.name
            try:
                info = item.stat(follow_symlinks=False)
            except OSError:
                continue
            kind = _kind(info.st_mode)
            if len(inventory.entries) == max_entries:
                inventory.truncated = True  # one more than allowed: stop here, unlisted
                return inventory
            inventory.entries.append(
                Entry(relative, kind, info.st_size if kind == FILE else 0,
                      info.st_nlink if kind == FILE else 1)
            )
            if kind == DIRECTORY and descend(relative):
                pending.append(relative)
    return inventory
