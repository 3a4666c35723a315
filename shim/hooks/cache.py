"""Result cache for the hooks, keyed by everything a kernel's check result depends on.

The key covers the kernel's content (every file's path and SHA-256, links by target), the
effective policy files and contract schemas (their bytes), which check ran, the kernelshim
version plus a digest of the checking code, and the versions of the model libraries. Any change
to one of them is a miss, so a cached answer is always the answer a fresh run would give.

Hashing a 1 GiB model on every commit would cost seconds, so, like git's index, a per-kernel
stat cache remembers ``(size, mtime_ns, ctime_ns, inode, device) -> sha256`` and an unchanged
file is only stat'ed. As in git, an entry is trusted only if the file was last changed clearly
before it was hashed ("racily clean" files are re-hashed), since a write within the same timestamp
tick would otherwise go unnoticed. ctime is part of the key because tools can restore mtime but
not ctime.

Cache files are written atomically (temporary file + ``os.replace``); unreadable or corrupt cache
files count as misses, and an unwritable cache directory only disables caching.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shim import __version__
from shim.findings import Finding

CACHE_DIR_ENV = "KERNELSHIM_CACHE_DIR"
NO_CACHE_ENV = "KERNELSHIM_NO_CACHE"
#: Files changed less than this long before they were hashed are re-hashed next time (coarse clocks).
RACY_WINDOW_NS = 2_000_000_000
_CHUNK = 1024 * 1024
_FORMAT = 2  # 2: findings carry a severity
#: The packages whose code decides a check's result; a change to any of them invalidates the cache.
_CODE_PACKAGES = ("spec", "contract", "policy", "protocol", "runtimes", "hooks")
_LIBRARIES = ("numpy", "onnx", "onnxruntime", "torch", "jsonschema", "packaging", "pyyaml")


def cache_dir() -> Path:
    """``$KERNELSHIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/kernelshim``, else ``~/.cache/kernelshim``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kernelshim"


def _sha256_file(path: Path) -> str:
    """SHA-256 of a regular file, opened without following links or blocking (``shim.kernelfs``);
    a file that is no longer one (swapped for a link or FIFO since the walk) is keyed as such."""
    from shim.kernelfs import KernelFileError, open_regular

    digest = hashlib.sha256()
    try:
        descriptor = open_regular(path)
    except KernelFileError as exc:
        return f"not-a-file:{exc.kind}"
    with os.fdopen(descriptor, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == _FORMAT else None


def _stat_signature(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


class FileHasher:
    """SHA-256 of files under one kernel, skipping files whose stat is unchanged since last hashed."""

    def __init__(self, store: Path | None) -> None:
        self.store = store
        self.entries: dict[str, list[Any]] = {}
        self.changed = False
        self.hashed_bytes = 0  # what this run really read; lets tests see that the stat cache worked
        if store is not None:
            data = _read_json(store)
            if data and isinstance(data.get("files"), dict):
                self.entries = data["files"]

    def digest(self, path: Path) -> str:
        key = str(path.absolute())
        before = path.lstat()
        signature = _stat_signature(before)
        entry = self.entries.get(key)
        last_change = max(before.st_mtime_ns, before.st_ctime_ns)
        trusted = (isinstance(entry, list) and len(entry) == 3 and entry[0] == signature
                   and isinstance(entry[2], int) and last_change + RACY_WINDOW_NS < entry[2])
        if trusted:
            return str(entry[1])
        hashed_at = time.time_ns()
        digest = _sha256_file(path)
        self.hashed_bytes += before.st_size
        if _stat_signature(path.lstat()) == signature:  # unchanged while reading: safe to remember
            self.entries[key] = [signature, digest, hashed_at]
            self.changed = True
        return digest

    def save(self, seen: Iterable[str] | None = None) -> None:
        """Persist the entries. After a full walk, ``seen`` lists the kernel's files and entries of
        files no longer there are dropped. The stat cache is only a speed-up: failures are ignored."""
        if self.store is None:
            return
        entries = self.entries
        if seen is not None:
            keep = set(seen)
            entries = {k: v for k, v in self.entries.items() if k in keep}
        if not self.changed and len(entries) == len(self.entries):
            return
        with contextlib.suppress(OSError):
            _write_atomic(self.store, {"format": _FORMAT, "files": entries})


#: Most entries a kernel's manifest lists; a kernel with more is checked without the cache (the
#: gate refuses it anyway, quickly), never hashed file by file.
MAX_MANIFEST_ENTRIES = 4096
#: Files larger than this (a sparse file can claim terabytes) are keyed by their ``lstat`` signature
#: (size, mtime, ctime, inode), as git's index does, never read.
MAX_HASHED_FILE_BYTES = 2 * 1024 * 1024 * 1024


def kernel_manifest(
    root: Path, hasher: FileHasher, only: Iterable[str] | None = None
) -> list[list[str]] | None:
    """``[relative path, kind, digest]`` for every entry of the kernel (or just the ``only`` files);
    None when the kernel is too large to key (more than ``MAX_MANIFEST_ENTRIES`` entries): its check
    then runs uncached.

    The walk uses ``lstat`` alone, iteratively (no recursion limit to hit however deep the folders),
    and opens only regular files with a single link, through ``shim.kernelfs`` (never following a
    link, never blocking on a FIFO). Links are recorded by target, special files and hard-linked
    files by their ``lstat`` signature; none is read (the gate reports them).
    """
    root = Path(root)
    manifest: list[list[str]] = []
    seen: list[str] = []

    def add(path: Path, relative: str) -> bool:
        try:
            info = os.lstat(path)
        except OSError:
            return False
        if stat.S_ISLNK(info.st_mode):
            try:
                manifest.append([relative, "link", os.readlink(path)])
            except OSError:
                manifest.append([relative, "link", ""])
        elif stat.S_ISDIR(info.st_mode):
            manifest.append([relative, "dir", ""])
            return True
        elif not stat.S_ISREG(info.st_mode) or info.st_nlink > 1 or info.st_size > MAX_HASHED_FILE_BYTES:
            kind = "file" if stat.S_ISREG(info.st_mode) else "other"
            manifest.append([relative, f"{kind}-stat", ",".join(map(str, _stat_signature(info)))])
        else:
            manifest.append([relative, "file", hasher.digest(path)])
            seen.append(str(path.absolute()))
        return False

    if only is not None:
        for relative in sorted(only):
            add(root / relative, relative)
        hasher.save(None)
        return manifest
    pending = [""]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(root / folder) as iterator:
                names = []
                for item in iterator:
                    names.append(item.name)
                    if len(manifest) + len(names) > MAX_MANIFEST_ENTRIES:
                        return None
        except OSError:
            manifest.append([folder, "unreadable", ""])
            continue
        for name in sorted(names):
            relative = f"{folder}/{name}" if folder else name
            if add(root / relative, relative):
                pending.append(relative)
    manifest.sort()
    hasher.save(seen)
    return manifest


def _code_digest() -> str:
    """Digest of the checking code itself, so an edit to kernelshim (even without a version bump,
    as in an editable install) is never answered from results the old code produced."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(__version__.encode())
    files = [package / name for name in ("findings.py", "strict_json.py", "resources.py", "kernelfs.py",
                                         "sandbox.py")]
    for sub in _CODE_PACKAGES:
        files += sorted((package / sub).glob("*.py"))
    for file in files:
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _library_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _file_digest_or_absent(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "absent"


def environment_fingerprint(policy_files: Iterable[Path]) -> dict[str, Any]:
    """Everything outside the kernel that a result depends on."""
    from shim.resources import data_dir

    schemas = sorted(data_dir("contracts").glob("*.schema.json"))
    return {
        "kernelshim": __version__,
        "code": _code_digest(),
        "python": ".".join(map(str, sys.version_info[:2])),
        "libraries": _library_versions(),
        "policies": [[str(p.name), _file_digest_or_absent(p)] for p in policy_files],
        "schemas": [[p.name, _file_digest_or_absent(p)] for p in schemas],
    }


@dataclass
class CachedResult:
    findings: list[Finding]
    samples_run: int


class ResultCache:
    """One stored result per (kernel, check); a lookup hits only if the stored key matches exactly."""

    def __init__(self, directory: Path | None = None, enabled: bool = True) -> None:
        self.directory = directory if directory is not None else cache_dir()
        self.enabled = enabled and not os.environ.get(NO_CACHE_ENV)
        self.warning: str | None = None

    def _slot(self, kind: str, root: Path, check: str = "") -> Path:
        name = hashlib.sha256(f"{root.absolute()}\0{check}".encode()).hexdigest()[:40]
        return self.directory / kind / f"{name}.json"

    def hasher(self, root: Path) -> FileHasher:
        return FileHasher(self._slot("stat", root) if self.enabled else None)

    def key(
        self, check: str, display_root: Path, manifest: list[list[str]], environment: dict[str, Any]
    ) -> str:
        material = json.dumps(
            {"format": _FORMAT, "check": check, "kernel": str(display_root), "files": manifest,
             "environment": environment},
            sort_keys=True, separators=(",", ":"),
        )
        return hashlib.sha256(material.encode()).hexdigest()

    def get(self, check: str, root: Path, key: str) -> CachedResult | None:
        if not self.enabled:
            return None
        data = _read_json(self._slot("results", root, check))
        if not data or data.get("key") != key:
            return None
        try:
            findings = [Finding(**entry) for entry in data["findings"]]
            return CachedResult(findings, int(data.get("samples_run", 0)))
        except (TypeError, ValueError, KeyError):
            return None

    def put(self, check: str, root: Path, key: str, findings: list[Finding], samples_run: int) -> None:
        if not self.enabled:
            return
        entries = [
            {"code": f.code, "file": f.file, "path": f.path, "message": f.message, "expected": f.expected,
             "fix": f.fix, "severity": f.severity}
            for f in findings
        ]
        try:
            _write_atomic(self._slot("results", root, check),
                          {"format": _FORMAT, "key": key, "findings": entries, "samples_run": samples_run})
        except OSError as exc:
            self.disable(f"cannot write the result cache in {self.directory}: {exc.strerror or exc}")

    def disable(self, reason: str) -> None:
        self.enabled = False
        self.warning = reason
