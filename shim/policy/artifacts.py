"""The artifact policy: kernel size, forbidden file kinds, symbolic links and pickle contents.

Runs on the raw directory before anything is loaded, so a hostile artifact is reported and
never handed to a loader.
"""

from __future__ import annotations

import fnmatch
import os
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shim.findings import Finding
from shim.policy.pickle_scan import (
    MAX_SNIFF_BYTES,
    is_headerless_pickle,
    looks_like_pickle,
    scan_pickle_bytes,
)

MAX_ARCHIVE_DEPTH = 3
MAX_MEMBER_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class KernelFile:
    path: Path
    relative: str
    size: int


def walk_kernel(root: Path) -> tuple[list[KernelFile], list[Finding]]:
    """All regular files of the kernel; symbolic links are findings and are never followed."""
    files: list[KernelFile] = []
    findings: list[Finding] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(directory)
        for name in sorted(dirnames + filenames):
            path = base / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                target = os.readlink(path)
                resolved = (path.parent / target).resolve()
                escapes = not resolved.is_relative_to(root.resolve())
                findings.append(Finding(
                    "KS405", str(path), "",
                    f"is a symbolic link to {target!r}"
                    + (" which points outside the kernel" if escapes else ""),
                    expected="regular files only (images and uploads copy links ambiguously)",
                    fix="replace the link with the file itself, or remove it",
                ))
                if name in dirnames:
                    dirnames.remove(name)
                continue
            if name in filenames and path.is_file():
                files.append(KernelFile(path, relative, path.stat().st_size))
        dirnames.sort()
    return files, findings


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _pickle_findings(
    data: bytes, display: str, policy: dict[str, Any], allowed: list[str], context: str
) -> list[Finding]:
    scan = scan_pickle_bytes(data)
    findings: list[Finding] = []
    dangerous = policy.get("dangerous_pickle_globals") or []
    reported: set[str] = set()
    for name in scan.globals:
        if name in reported:
            continue
        reported.add(name)
        if _matches(name, dangerous):
            findings.append(Finding(
                "KS403", display, "",
                f"pickle imports {name}, which can run commands or code when the file is loaded",
                expected="no executable globals in a model artifact",
                fix="do not ship this file; it may be malicious. Re-export the model with "
                "torch.jit.save or to ONNX from trusted code",
            ))
        elif not _matches(name, allowed):
            findings.append(Finding(
                "KS404", display, "",
                f"pickle imports {name}, which is not on the allow-list for {context}",
                expected="only the globals listed in policies/artifact_policy.yaml "
                "(torchscript_pickle_globals) for TorchScript archives; none elsewhere",
                fix="re-export the model with torch.jit.save or to ONNX; ship no other pickled objects",
            ))
    if scan.error:
        findings.append(Finding(
            "KS406", display, "", scan.error,
            expected="a well-formed pickle stream",
            fix="re-export the artifact; the file may be truncated or tampered with",
        ))
    return findings


def _scan_zip(
    source: Any, display: str, policy: dict[str, Any], depth: int, torchscript: bool
) -> list[Finding]:
    findings: list[Finding] = []
    allowed = list(policy.get("torchscript_pickle_globals") or []) if torchscript else []
    context = "TorchScript archives" if torchscript else "zip archives"
    try:
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                member = f"{display}!{info.filename}"
                if info.is_dir():
                    continue
                with archive.open(info) as handle:
                    head = handle.read(2)
                named_or_headed = (info.filename.endswith((".pkl", ".pickle")) or looks_like_pickle(head)
                                   or head == b"PK")
                if info.file_size > MAX_MEMBER_BYTES:
                    if named_or_headed:  # a pickle (or archive) this large is not a model's; never skip it
                        findings.append(Finding(
                            "KS406", member, "",
                            f"pickle or archive member of {info.file_size:,} bytes is too large to scan",
                            expected=f"pickle members under {MAX_MEMBER_BYTES:,} bytes",
                            fix="re-export the model; tensor data belongs in storage members, not pickles",
                        ))
                    continue  # tensor storage blobs; not pickles worth reading whole
                if not named_or_headed and (info.file_size > MAX_SNIFF_BYTES
                                            or not is_headerless_pickle(archive.read(info))):
                    continue
                data = archive.read(info)
                if data[:2] == b"PK" and depth < MAX_ARCHIVE_DEPTH:
                    import io

                    findings += _scan_zip(io.BytesIO(data), member, policy, depth + 1, False)
                else:
                    findings += _pickle_findings(data, member, policy, allowed, context)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        # RuntimeError: an encrypted member, which cannot be scanned
        findings.append(Finding(
            "KS406", display, "", f"unreadable zip archive: {exc}",
            expected="a well-formed archive", fix="re-export the artifact",
        ))
    return findings


def scan_file_contents(
    file: KernelFile, policy: dict[str, Any], model_file: str | None, framework: str | None
) -> list[Finding]:
    """Pickle scan of one file: plain pickles, and pickles inside zip archives (recursively)."""
    with file.path.open("rb") as handle:
        head = handle.read(4)
    is_model = file.relative == model_file
    if head[:2] == b"PK" and zipfile.is_zipfile(file.path):
        torchscript = is_model and framework == "torchscript"
        return _scan_zip(file.path, str(file.path), policy, 0, torchscript=torchscript)
    suffix = file.path.suffix.lower()
    if looks_like_pickle(head) or suffix in (".pkl", ".pickle", ".joblib", ".dill"):
        return _pickle_findings(file.path.read_bytes(), str(file.path), policy, [], "plain pickle files")
    if not is_model and file.size <= MAX_SNIFF_BYTES:
        data = file.path.read_bytes()
        if is_headerless_pickle(data):  # a protocol 0/1 pickle under an innocent name
            return _pickle_findings(data, str(file.path), policy, [], "plain pickle files")
    return []


def check_artifacts(
    root: Path, policy: dict[str, Any], model_file: str | None = None, framework: str | None = None
) -> tuple[list[KernelFile], list[Finding]]:
    """Size cap, forbidden kinds, links and pickle contents over the whole kernel."""
    files, findings = walk_kernel(root)
    total = sum(f.size for f in files)
    cap = policy["max_kernel_size_bytes"]
    if total > cap:
        findings.append(Finding(
            "KS401", str(root), "", f"kernel is {total:,} bytes; the cap is {cap:,} bytes",
            expected=f"at most {cap:,} bytes in all files together",
            fix="remove files the model does not need at inference time (data sets, checkpoints, logs)",
        ))
    forbidden: dict[str, str] = policy["forbidden_extensions"]
    for file in files:
        suffix = file.path.suffix.lower()
        if suffix in forbidden:
            findings.append(Finding(
                "KS402", str(file.path), "", f"{suffix} files are not allowed: {forbidden[suffix]}",
                expected="no " + ", ".join(sorted(forbidden)) + " files in a kernel",
                fix="remove the file; put what the model needs inside the model file",
            ))
        findings += scan_file_contents(file, policy, model_file, framework)
    return files, findings


def iter_model_names(policy: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    for framework, entry in policy["frameworks"].items():
        yield framework, entry["model_files"]
