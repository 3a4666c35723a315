"""A TorchScript archive must be exactly what ``torch.jit.save`` writes.

``torch.jit.save`` writes one zip whose members all sit under one top-level folder:
``data.pkl`` and ``constants.pkl`` (pickles of the module and its constants), for traced modules
``traced_inputs.pkl``, ``version`` (``.data/version`` from file format 6 on), ``byteorder``,
``.data/serialization_id``, ``code/**.py`` (TorchScript source) with a ``.py.debug_pkl`` source
map beside each, and one member per tensor storage under ``data/``, ``constants/`` or
``traced_inputs/``, stored uncompressed. Anything else (``extra/`` files, a nested archive, a member
the pickles never reference, bytes outside the members) is refused.

Each member is then proven by content: the pickles parse with the restricted unpickler
(``shim.policy.restricted_pickle``) and reference only the globals the TorchScript pickler writes,
TorchScript classes defined by the archive's own ``code/``, and storages that exist with exactly
the size the pickle declares; every tensor lies inside its storage; source files are UTF-8 text;
storages are read in full, so a corrupt (CRC) member or a storage that is really an archive or a
pickle is found.
"""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from shim.findings import Finding
from shim.policy.inventory import display_name
from shim.policy.restricted_pickle import (
    PickleReport,
    classify_global,
    first_global,
    inspect_pickle,
    rules_for,
)
from shim.policy.sniff import describe_head
from shim.policy.zip_layout import (
    ARCHIVE_ERRORS,
    LayoutError,
    open_model_archive,
    unreadable_archive,
)

_READ_CHUNK = 8 * 1024 * 1024
_SNIFF_STORAGE_BYTES = 1024 * 1024
_SMALL_MEMBER_BYTES = 64
#: Largest inflation of a compressed member; source text compresses ~5x, a bomb ~1000x.
MAX_RATIO = 100
_PATH_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*"
_CODE = re.compile(rf"code/(?:{_PATH_SEGMENT}/)*{_PATH_SEGMENT}\.py\Z")
_DEBUG = re.compile(rf"code/(?:{_PATH_SEGMENT}/)*{_PATH_SEGMENT}\.py\.debug_pkl\Z")
_STORAGE = re.compile(r"(data|constants|traced_inputs)/([0-9]{1,12})\Z")
#: Each pickle that may reference storages, and the folder its storages live in.
_PICKLES = {"data.pkl": "data", "constants.pkl": "constants", "traced_inputs.pkl": "traced_inputs"}
_SMALL = {
    "version": re.compile(rb"[0-9]{1,8}\n?\Z"),
    "byteorder": re.compile(rb"(little|big)\n?\Z"),
    ".data/version": re.compile(rb"[0-9]{1,8}\n?\Z"),
    ".data/serialization_id": re.compile(rb"[0-9]{1,40}\n?\Z"),
}
_REQUIRED = ("data.pkl", "constants.pkl")
LAYOUT_FIX = "re-export the model with torch.jit.save from trusted code; ship no other files inside it"


#: Findings of one code listed per archive; the rest are counted in one summary finding, so an
#: archive of 100,000 stray members or storages costs neither time nor a flood of output.
MAX_LISTED = 25


class _Findings(list):
    """A list of findings that keeps the first ``MAX_LISTED`` of each code and counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def append(self, finding: Finding) -> None:  # type: ignore[override]
        count = self.counts[finding.code] = self.counts.get(finding.code, 0) + 1
        if count <= MAX_LISTED:
            super().append(finding)

    def full(self, code: str) -> bool:
        return self.counts.get(code, 0) >= MAX_LISTED

    def summarize(self, display: str) -> list[Finding]:
        listed = list(self)
        for code, count in self.counts.items():
            if count > MAX_LISTED:
                listed.append(Finding(code, display, "", f"and {count - MAX_LISTED:,} more findings like "
                                      "the ones above in this archive", expected="exactly torch's layout",
                                      fix=LAYOUT_FIX))
        return listed


class _Archive:
    """Findings for one archive; ``member`` display names are ``<file>!<member>``."""

    def __init__(self, display: str, policy: Mapping[str, Any], dangerous: Callable[[str], bool]) -> None:
        self.display = display
        self.policy = policy
        self.dangerous = dangerous
        self.findings = _Findings()
        #: when every pickle of the archive must be parsed by (set at the first pickle)
        self.pickles_not_after: float | None = None

    def layout(self, message: str, member: str | None = None) -> None:
        where = f"{self.display}!{display_name(member)}" if member else self.display
        self.findings.append(
            Finding(
                "KS408",
                where,
                "",
                message,
                expected="exactly the members torch.jit.save writes (data.pkl, constants.pkl, version, "
                "byteorder, .data/serialization_id, code/**.py and .py.debug_pkl, data/<n> storages)",
                fix=LAYOUT_FIX,
            )
        )

    def pickle_findings(self, member: str, report: PickleReport) -> None:
        where = f"{self.display}!{display_name(member)}"
        if report.over_budget:
            self.findings.append(
                Finding(
                    "KS410",
                    where,
                    "",
                    f"pickle {report.error}; the archive is refused",
                    expected="a pickle as torch.jit.save writes it, parsed within policies/"
                    "artifact_policy.yaml's scan budget (max_pickle_seconds, memory_bytes)",
                    fix=LAYOUT_FIX,
                )
            )
        elif report.rejected:
            code = classify_global(report.rejected, self.dangerous)
            self.findings.append(
                Finding(
                    code,
                    where,
                    "",
                    f"pickle references {report.rejected}, which torch.jit.save never writes"
                    + (" and which can run commands or code when loaded" if code == "KS403" else ""),
                    expected="only the globals in policies/artifact_policy.yaml (torchscript_pickle_globals) "
                    "and TorchScript classes defined in the archive's code/",
                    fix="do not ship this file; it may be malicious. " + LAYOUT_FIX,
                )
            )
        elif report.error:
            self.findings.append(
                Finding(
                    "KS406",
                    where,
                    "",
                    f"pickle {report.error}",
                    expected="a well-formed pickle as torch.jit.save writes it",
                    fix=LAYOUT_FIX,
                )
            )
        elif report.trailing:
            self.findings.append(
                Finding(
                    "KS406",
                    where,
                    "",
                    f"has {report.trailing:,} bytes after the pickle's end (STOP)",
                    expected="one pickle and nothing after it",
                    fix=LAYOUT_FIX,
                )
            )


def check_torchscript_archive(
    source: str | BinaryIO,
    display: str,
    policy: Mapping[str, Any],
    dangerous: Callable[[str], bool],
    progress: Callable[[str], None] = lambda _label: None,
) -> list[Finding]:
    """Every finding for the archive at ``source`` (a path, or a file the caller opened without
    following links); an empty list means it is exactly torch's layout."""
    checker = _Archive(display, policy, dangerous)
    try:
        with open_model_archive(source, policy) as (archive, infos):
            _check_members(checker, archive, infos, progress)
    except LayoutError as exc:
        checker.layout(str(exc))
    except ARCHIVE_ERRORS as exc:
        checker.findings.append(
            unreadable_archive(display, exc, expected="a TorchScript archive written by torch.jit.save",
                               fix=LAYOUT_FIX)
        )
    return checker.findings.summarize(display)


def _check_members(
    checker: _Archive, archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], progress: Callable[[str], None]
) -> None:
    prefixes = {info.filename.split("/", 1)[0] for info in infos}
    if len(prefixes) != 1 or any("/" not in info.filename for info in infos):
        checker.layout("members are not all inside one top-level folder as torch.jit.save writes them")
        return
    prefix = prefixes.pop() + "/"
    by_name = {info.filename[len(prefix) :]: info for info in infos}
    for required in _REQUIRED:
        if required not in by_name:
            checker.layout(f"has no {required} member")
    if "version" not in by_name and ".data/version" not in by_name:  # format >= 6 moves it under .data/
        checker.layout("has no version member (version or .data/version)")
    scan = checker.policy.get("scan") or {}
    max_code = int(scan.get("max_code_bytes", 64 * 1024 * 1024))
    storages: dict[str, zipfile.ZipInfo] = {}
    for relative, info in by_name.items():
        if info.is_dir():
            checker.layout("has a directory entry, which torch.jit.save never writes", info.filename)
        elif _STORAGE.match(relative):
            storages[relative] = info
        elif relative in _SMALL:
            _check_small(checker, archive, info, _SMALL[relative])
        elif _CODE.match(relative):
            _check_code(checker, archive, info, max_code)
        elif _DEBUG.match(relative) or relative in _PICKLES:
            continue  # pickles: parsed below, once their rules are known
        else:
            checker.layout("is not a member torch.jit.save writes", info.filename)
            if not checker.findings.full("KS408"):
                _diagnose_member(checker, archive, info)
    code_modules = {_module_of(r) for r in by_name if _CODE.match(r)}
    referenced: dict[str, int] = {}
    for relative, info in by_name.items():
        if not (_DEBUG.match(relative) or relative in _PICKLES):
            continue
        progress(f"{checker.display}!{display_name(info.filename)}")
        folder = _PICKLES.get(relative)
        limit = rules_for(checker.policy, storages=False, torch_classes=False).max_bytes
        data = _read_member(checker, archive, info, limit)
        if data is None:
            continue
        # the parse's deadline starts now, after the member was read
        if checker.pickles_not_after is None:  # all pickles of the archive: twice one pickle's budget
            scan = checker.policy.get("scan") or {}
            checker.pickles_not_after = time.monotonic() + 2 * float(scan.get("max_pickle_seconds", 1.5))
        report = inspect_pickle(data, rules_for(checker.policy, storages=folder is not None,
                                                torch_classes=folder is not None,
                                                not_after=checker.pickles_not_after))
        checker.pickle_findings(info.filename, report)
        for name in sorted(report.torch_classes):
            module = name.rsplit(".", 1)[0]
            if module not in code_modules:
                checker.layout(
                    f"pickle uses TorchScript class {name} whose code is not in the archive", info.filename
                )
        if folder:
            _collect_storages(checker, folder, report, storages, prefix, referenced, info.filename)
    for relative, info in storages.items():
        if relative not in referenced:
            checker.layout("is a storage no pickle in the archive references", info.filename)
            continue
        progress(f"{checker.display}!{display_name(info.filename)}")
        _check_storage(checker, archive, info, referenced[relative])


def _diagnose_member(checker: _Archive, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Say what a stray member really is: a pickle that would call a global, or a nested archive."""
    rules = rules_for(checker.policy, storages=False, torch_classes=False)
    limit = rules.max_bytes
    if (
        info.file_size > limit
        or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
        or info.file_size > MAX_RATIO * max(info.compress_size, 1) + _SMALL_MEMBER_BYTES
    ):
        return
    with archive.open(info) as handle:
        data = handle.read(limit)
    name = first_global(data, max_bytes=limit, deadline=rules.deadline)
    if name:
        code = classify_global(name, checker.dangerous)
        checker.findings.append(
            Finding(
                code,
                f"{checker.display}!{display_name(info.filename)}",
                "",
                f"is a pickle that would call {name} when loaded",
                expected="no pickles besides data.pkl, constants.pkl and the .debug_pkl source maps",
                fix="do not ship this file; it may be malicious. " + LAYOUT_FIX,
            )
        )
        return
    kind = describe_head(data[:512])
    if kind:
        checker.layout(f"is a nested {kind.removeprefix('a ').removeprefix('an ')}", info.filename)


def _module_of(relative: str) -> str:
    return relative[len("code/") : -len(".py")].replace("/", ".")


def _collect_storages(
    checker: _Archive,
    folder: str,
    report: PickleReport,
    storages: dict,
    prefix: str,
    referenced: dict[str, int],
    member: str,
) -> None:
    for key, ref in report.storages.items():
        name = f"{folder}/{key}"
        info = storages.get(name)
        if info is None and ref.numel > 0:
            checker.layout(f"pickle references storage {name}, which is not in the archive", member)
            continue
        if info is None:
            continue
        # torch.jit.save writes traced_inputs/<n> as empty records (the example inputs are not kept)
        if info.file_size != ref.nbytes and not (folder == "traced_inputs" and info.file_size == 0):
            checker.layout(
                f"storage {name} is {info.file_size:,} bytes; the pickle declares {ref.numel:,} "
                f"x {ref.type_name} = {ref.nbytes:,} bytes",
                member,
            )
        referenced[name] = ref.nbytes
    for key, end in report.extents:
        ref = report.storages.get(key)
        if ref is not None and end > ref.numel:
            checker.layout(
                f"a tensor reads elements up to {end:,} of storage {folder}/{key}, which holds {ref.numel:,}",
                member,
            )


def _read_member(
    checker: _Archive, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int
) -> bytes | None:
    if info.file_size > limit:
        checker.findings.append(
            Finding(
                "KS409",
                f"{checker.display}!{display_name(info.filename)}",
                "",
                f"is {info.file_size:,} bytes uncompressed; members like it may be at most {limit:,}",
                expected=f"at most {limit:,} bytes (policies/artifact_policy.yaml, scan)",
                fix=LAYOUT_FIX,
            )
        )
        return None
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        checker.layout("uses a compression method torch.jit.save never writes", info.filename)
        return None
    if info.file_size > MAX_RATIO * max(info.compress_size, 1) + _SMALL_MEMBER_BYTES:
        checker.layout(
            f"inflates {info.compress_size:,} bytes to {info.file_size:,} (a compression bomb; "
            "torch's source members compress a few times at most)",
            info.filename,
        )
        return None
    with archive.open(info) as handle:
        data = handle.read(limit + 1)
    return data


def _check_small(
    checker: _Archive, archive: zipfile.ZipFile, info: zipfile.ZipInfo, pattern: re.Pattern
) -> None:
    data = _read_member(checker, archive, info, _SMALL_MEMBER_BYTES)
    if data is not None and not pattern.match(data):
        checker.layout("does not hold what torch.jit.save writes there", info.filename)


def _check_code(checker: _Archive, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> None:
    data = _read_member(checker, archive, info, limit)
    if data is None:
        return
    if b"\x00" in data:
        checker.layout("is TorchScript source with NUL bytes (binary content)", info.filename)
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        checker.layout("is not UTF-8 TorchScript source", info.filename)


def _check_storage(checker: _Archive, archive: zipfile.ZipFile, info: zipfile.ZipInfo, nbytes: int) -> None:
    """Read the whole storage: the CRC proves it is the declared bytes; its start must not be a
    container or a pickle (a storage read as raw bytes by torch, smuggled for another reader)."""
    if info.compress_type != zipfile.ZIP_STORED:
        checker.layout(
            "is a compressed storage; torch.jit.save stores tensor data uncompressed", info.filename
        )
        return
    with archive.open(info) as handle:
        head = handle.read(_SNIFF_STORAGE_BYTES)  # enough for a smuggled pickle's global
        while handle.read(_READ_CHUNK):
            pass
    kind = describe_head(head[:512])
    if kind is None and head[:1] == b"\x80":
        global_name = first_global(head, max_pickles=1, deadline=time.monotonic() + 1.0)
        kind = f"a pickle importing {global_name}" if global_name else None
    if kind:
        checker.layout(f"storage is really {kind}", info.filename)

