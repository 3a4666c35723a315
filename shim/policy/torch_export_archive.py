"""A torch.export archive (``model.pt2``) must be exactly what ``torch.export.save`` writes.

``torch.export.save`` (torch 2.13, archive version 0) writes one zip, every member stored
uncompressed under one top-level folder named after the file (``model/``):

- ``archive_format`` (``pt2``), ``archive_version`` (``0``), ``.data/version``, ``byteorder``,
  ``.data/serialization_id``: a few bytes each, checked against their exact form;
- ``models/model.json``: the program itself (graph, signature, range constraints) as JSON, parsed
  strictly (unique keys, finite numbers, bounded depth) and required to be a JSON object;
- ``data/weights/model_weights_config.json`` and ``data/constants/model_constants_config.json``:
  JSON describing each parameter, buffer and tensor constant (dtype, sizes, strides, offset and the
  raw file holding it);
- ``data/weights/weight_<n>`` and ``data/constants/tensor_<n>``: raw tensor bytes. Read in full
  (the CRC proves they are what was written), each referenced by a config entry, large enough
  for every tensor the config views in it, and not a container or a pickle in disguise;
- ``data/sample_inputs/model.pt``: the example inputs, a nested ``torch.save`` zip that
  ``torch.export.load`` unpickles (``weights_only=True``, falling back to ``False``). It is the one
  nested archive allowed, and it is proven the same way as a TorchScript archive: exact layout,
  and its ``data.pkl`` parsed by the restricted unpickler (``shim.policy.restricted_pickle``)
  against ``torch_export_pickle_globals`` with every storage present at exactly its size.

Refused: any other member (``extra/`` files, AOTInductor or legacy ``*.pt`` weight files, a second
model), config entries that torch would unpickle (``use_pickle``: tensor subclasses, custom and
opaque objects are unpickled with ``weights_only=False``), bytes outside the members. Because
the graph JSON is proven here, the contract check reads the signature from it without torch
(``graph_of``), so nothing is deserialised before the sandboxed model run.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from shim.findings import Finding
from shim.policy.inventory import display_name
from shim.policy.restricted_pickle import (
    PickleReport,
    Rules,
    classify_global,
    first_global,
    inspect_pickle,
)
from shim.policy.sniff import describe_head
from shim.policy.zip_layout import (
    ARCHIVE_ERRORS,
    LayoutError,
    check_zip_layout,
    open_model_archive,
    unreadable_archive,
)
from shim.strict_json import StrictJSONError, loads_strict

_READ_CHUNK = 8 * 1024 * 1024
_SNIFF_BYTES = 1024 * 1024
_SMALL_MEMBER_BYTES = 64
MAX_RATIO = 100
MODEL_NAME = "model"
GRAPH = f"models/{MODEL_NAME}.json"
WEIGHTS_CONFIG = f"data/weights/{MODEL_NAME}_weights_config.json"
CONSTANTS_CONFIG = f"data/constants/{MODEL_NAME}_constants_config.json"
SAMPLE_INPUTS = f"data/sample_inputs/{MODEL_NAME}.pt"
AOTI_DIR = "data/aotinductor/"
_RAW = {
    "data/weights/": re.compile(r"weight_[0-9]{1,9}\Z"),
    "data/constants/": re.compile(r"tensor_[0-9]{1,9}\Z"),
}
_SMALL = {
    "archive_format": re.compile(rb"pt2\Z"),
    "archive_version": re.compile(rb"0\Z"),
    ".data/version": re.compile(rb"[0-9]{1,8}\n?\Z"),
    "byteorder": re.compile(rb"(little|big)\n?\Z"),
    ".data/serialization_id": re.compile(rb"[0-9]{1,40}\n?\Z"),
}
#: members of the nested torch.save archive (sample inputs), besides data/<n> storages
_SAVE_SMALL = {
    "version": re.compile(rb"[0-9]{1,8}\n?\Z"),
    ".data/version": re.compile(rb"[0-9]{1,8}\n?\Z"),
    "byteorder": re.compile(rb"(little|big)\n?\Z"),
    ".data/serialization_id": re.compile(rb"[0-9]{1,40}\n?\Z"),
    ".format_version": re.compile(rb"[0-9]{1,8}\n?\Z"),
    ".storage_alignment": re.compile(rb"[0-9]{1,8}\n?\Z"),
}
_SAVE_STORAGE = re.compile(r"data/([0-9]{1,12})\Z")
_JSON_MEMBERS = (GRAPH, WEIGHTS_CONFIG, CONSTANTS_CONFIG)
_REQUIRED = (*_SMALL, *_JSON_MEMBERS, SAMPLE_INPUTS)
#: bytes per element of torch._export.serde.schema.ScalarType (the JSON's "dtype" numbers)
SCALAR_ITEMSIZE = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 2,
    7: 4,
    8: 8,
    9: 4,
    10: 8,
    11: 16,
    12: 1,
    13: 2,
    28: 2,
    29: 1,
    30: 1,
    31: 1,
    32: 1,
    33: 1,
    34: 4,
    35: 8,
}
LAYOUT_FIX = "re-export the model with torch.export.save from trusted code; ship no other files inside it"
EXPECTED = (
    "exactly the members torch.export.save writes (archive_format, archive_version, byteorder, "
    ".data/version, .data/serialization_id, models/model.json, data/weights/weight_<n> and "
    "data/constants/tensor_<n> with their *_config.json, data/sample_inputs/model.pt)"
)


class _Archive:
    """Findings for one archive; member display names are ``<file>!<member>``."""

    def __init__(self, display: str, policy: Mapping[str, Any], dangerous: Callable[[str], bool]) -> None:
        self.display = display
        self.policy = policy
        self.dangerous = dangerous
        self.findings: list[Finding] = []
        scan = policy.get("scan") or {}
        self.rules = Rules(
            allowed_globals=frozenset(policy.get("torch_export_pickle_globals") or ()),
            storages=True,
            max_bytes=int(scan.get("max_pickle_bytes", Rules.max_bytes)),
            max_calls=int(scan.get("max_pickle_objects", Rules.max_calls)),
        )
        self.max_json = int(scan.get("max_code_bytes", 64 * 1024 * 1024))
        self.json_depth = int((policy.get("role_limits") or {}).get("json_depth", 64))

    def where(self, member: str | None) -> str:
        return f"{self.display}!{display_name(member)}" if member else self.display

    def layout(self, message: str, member: str | None = None) -> None:
        self.findings.append(
            Finding("KS408", self.where(member), "", message, expected=EXPECTED, fix=LAYOUT_FIX)
        )

    def content(self, message: str, member: str, expected: str, where: str = "") -> None:
        self.findings.append(
            Finding("KS407", self.where(member), where, message, expected=expected, fix=LAYOUT_FIX)
        )

    def pickle_findings(self, member: str, report: PickleReport) -> None:
        if report.rejected:
            code = classify_global(report.rejected, self.dangerous)
            self.findings.append(
                Finding(
                    code,
                    self.where(member),
                    "",
                    f"pickle references {report.rejected}, which torch.export.save never writes"
                    + (" and which can run commands or code when loaded" if code == "KS403" else ""),
                    expected="only the globals in policies/artifact_policy.yaml "
                    "(torch_export_pickle_globals)",
                    fix="do not ship this file; it may be malicious. " + LAYOUT_FIX,
                )
            )
        elif report.error or report.trailing:
            problem = (
                f"pickle {report.error}"
                if report.error
                else f"has {report.trailing:,} bytes after the pickle's end (STOP)"
            )
            self.findings.append(
                Finding(
                    "KS406",
                    self.where(member),
                    "",
                    problem,
                    expected="one well-formed pickle as torch.save writes it",
                    fix=LAYOUT_FIX,
                )
            )


def check_torch_export_archive(
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
            unreadable_archive(display, exc, expected="a torch.export archive written by torch.export.save",
                               fix=LAYOUT_FIX)
        )
    return checker.findings


def _split_root(
    checker: _Archive, infos: list[zipfile.ZipInfo]
) -> tuple[str, dict[str, zipfile.ZipInfo]] | None:
    prefixes = {info.filename.split("/", 1)[0] for info in infos}
    if len(prefixes) != 1 or any("/" not in info.filename for info in infos):
        checker.layout("members are not all inside one top-level folder as torch.export.save writes them")
        return None
    prefix = prefixes.pop() + "/"
    return prefix, {info.filename[len(prefix) :]: info for info in infos}


def _check_members(
    checker: _Archive, archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], progress: Callable[[str], None]
) -> None:
    split = _split_root(checker, infos)
    if split is None:
        return
    _prefix, by_name = split
    for required in _REQUIRED:
        if required not in by_name:
            checker.layout(f"has no {required} member")
    raw: dict[str, zipfile.ZipInfo] = {}
    documents: dict[str, Any] = {}
    compiled = [r for r in by_name if r.startswith(AOTI_DIR)]
    if compiled:
        checker.layout(
            f"is an AOTInductor package ({len(compiled)} members of generated C++ and native shared "
            f"libraries under {AOTI_DIR}), not a torch.export program: a kernel carries no native code; "
            "ship the file torch.export.save writes"
        )
    for relative, info in by_name.items():
        folder, _, name = relative.rpartition("/")
        if relative.startswith(AOTI_DIR):
            _diagnose_member(checker, archive, info)  # named above; say only if one is a pickle
        elif info.is_dir():
            checker.layout("has a directory entry, which torch.export.save never writes", info.filename)
        elif relative in _SMALL:
            _check_small(checker, archive, info, _SMALL[relative])
        elif relative in _JSON_MEMBERS:
            progress(checker.where(info.filename))
            value = _read_json(checker, archive, info)
            if value is not None:
                documents[relative] = value
        elif relative == SAMPLE_INPUTS:
            progress(checker.where(info.filename))
            _check_sample_inputs(checker, archive, info)
        elif folder + "/" in _RAW and _RAW[folder + "/"].match(name):
            raw[relative] = info
        else:
            checker.layout("is not a member torch.export.save writes", info.filename)
            _diagnose_member(checker, archive, info)
    needed: dict[str, int] = {}
    for config, folder in ((WEIGHTS_CONFIG, "data/weights/"), (CONSTANTS_CONFIG, "data/constants/")):
        if config in documents:
            _check_config(checker, by_name[config].filename, documents[config], folder, needed)
    for relative, info in raw.items():
        if relative not in needed:
            checker.layout("is a raw tensor file no config entry references", info.filename)
            continue
        progress(checker.where(info.filename))
        _check_raw(checker, archive, info, needed.pop(relative))
    for relative in sorted(needed):
        if needed[relative] > 0:
            checker.layout(f"a config entry reads {relative}, which is not in the archive")
    graph = documents.get(GRAPH)
    if graph is not None and not isinstance(graph.get("graph_module"), dict):
        checker.content(
            "has no graph_module object",
            by_name[GRAPH].filename,
            "the ExportedProgram JSON torch.export.save writes",
        )


def _read_member(
    checker: _Archive, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int
) -> bytes | None:
    if info.file_size > limit:
        checker.findings.append(
            Finding(
                "KS409",
                checker.where(info.filename),
                "",
                f"is {info.file_size:,} bytes uncompressed; members like it may be at most {limit:,}",
                expected=f"at most {limit:,} bytes (policies/artifact_policy.yaml, scan)",
                fix=LAYOUT_FIX,
            )
        )
        return None
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        checker.layout("uses a compression method torch.export.save never writes", info.filename)
        return None
    if info.file_size > MAX_RATIO * max(info.compress_size, 1) + _SMALL_MEMBER_BYTES:
        checker.layout(
            f"inflates {info.compress_size:,} bytes to {info.file_size:,} (a compression bomb)", info.filename
        )
        return None
    with archive.open(info) as handle:
        return handle.read(limit + 1)


def _check_small(
    checker: _Archive, archive: zipfile.ZipFile, info: zipfile.ZipInfo, pattern: re.Pattern
) -> None:
    data = _read_member(checker, archive, info, _SMALL_MEMBER_BYTES)
    if data is not None and not pattern.match(data):
        checker.layout("does not hold what torch.export.save writes there", info.filename)


def _read_json(checker: _Archive, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> dict[str, Any] | None:
    data = _read_member(checker, archive, info, checker.max_json)
    if data is None:
        return None
    expected = (
        f"one UTF-8 JSON object within {checker.json_depth} levels of nesting, as torch.export.save writes"
    )
    try:
        value = loads_strict(data, max_depth=checker.json_depth)
    except StrictJSONError as exc:
        checker.content(f"is not strict JSON: {exc}", info.filename, expected, exc.location)
        _diagnose_member(checker, archive, info)
        return None
    if not isinstance(value, dict):
        checker.content(f"holds a JSON {type(value).__name__}, not an object", info.filename, expected)
        return None
    return value


def _int_of(value: Any) -> int | None:
    """``{"as_int": n}`` as torch serialises a static size, stride or offset."""
    if isinstance(value, dict) and set(value) == {"as_int"} and type(value["as_int"]) is int:
        return value["as_int"]
    return None


def tensor_nbytes(meta: Any) -> int | None:
    """Bytes a tensor view reads from its raw file (offset and strides included), or None if the
    metadata is not the static form torch writes for saved weights."""
    if not isinstance(meta, dict) or meta.get("dtype") not in SCALAR_ITEMSIZE:
        return None
    sizes = [_int_of(v) for v in meta.get("sizes") or []] if isinstance(meta.get("sizes"), list) else None
    strides = (
        [_int_of(v) for v in meta.get("strides") or []] if isinstance(meta.get("strides"), list) else None
    )
    offset = _int_of(meta.get("storage_offset"))
    if sizes is None or strides is None or offset is None or len(sizes) != len(strides):
        return None
    if any(v is None or v < 0 for v in (*sizes, *strides)) or offset < 0:
        return None
    if 0 in sizes:
        return 0
    end = offset + sum((s - 1) * st for s, st in zip(sizes, strides, strict=True)) + 1  # type: ignore[operator]
    return end * SCALAR_ITEMSIZE[meta["dtype"]]


def _check_config(
    checker: _Archive, member: str, document: dict[str, Any], folder: str, needed: dict[str, int]
) -> None:
    config = document.get("config")
    expected = (
        '{"config": {name: {path_name, is_param, use_pickle: false, tensor_meta}}} '
        "as torch.export.save writes"
    )
    if not isinstance(config, dict) or set(document) != {"config"}:
        checker.content('is not a payload config (one "config" object)', member, expected)
        return
    pattern = _RAW[folder]
    for name, entry in config.items():
        where = f"$.config[{name[:60]!r}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("path_name"), str):
            checker.content("entry has no path_name", member, expected, where)
            continue
        if entry.get("use_pickle") is not False:
            checker.layout(
                f"entry {name[:60]!r} is stored as a pickle (a tensor subclass, custom or opaque object), "
                "which torch.export.load unpickles with weights_only=False",
                member,
            )
            continue
        if not pattern.match(entry["path_name"]):
            checker.content(
                f"entry {name[:60]!r} names file {entry['path_name'][:60]!r}",
                member,
                f"{folder}{pattern.pattern.rstrip(chr(92) + 'Z')}",
                where,
            )
            continue
        nbytes = tensor_nbytes(entry.get("tensor_meta"))
        if nbytes is None:
            checker.content(
                f"entry {name[:60]!r} has tensor_meta torch.export.save never writes for a "
                "saved tensor (unknown dtype, symbolic or negative sizes)",
                member,
                expected,
                where,
            )
            continue
        key = folder + entry["path_name"]
        needed[key] = max(needed.get(key, 0), nbytes)


def _check_raw(checker: _Archive, archive: zipfile.ZipFile, info: zipfile.ZipInfo, nbytes: int) -> None:
    """Raw tensor bytes: stored, at least as long as the views in it, read in full (CRC), and not a
    container or pickle in disguise (torch reads them as bytes; another reader might not)."""
    if info.compress_type != zipfile.ZIP_STORED:
        checker.layout(
            "is a compressed tensor file; torch.export.save stores tensor data uncompressed", info.filename
        )
        return
    if info.file_size < nbytes:
        checker.layout(f"is {info.file_size:,} bytes; its config entries read {nbytes:,}", info.filename)
        return
    with archive.open(info) as handle:
        head = handle.read(_SNIFF_BYTES)
        while handle.read(_READ_CHUNK):
            pass
    kind = describe_head(head[:512])
    if kind is None and head[:1] == b"\x80":
        global_name = first_global(head, max_pickles=1)
        kind = f"a pickle importing {global_name}" if global_name else None
    if kind:
        checker.layout(f"raw tensor file is really {kind}", info.filename)


def _diagnose_member(checker: _Archive, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Say what a refused member really is: a pickle that would call a global, or a nested archive."""
    limit = checker.rules.max_bytes
    if (
        info.file_size > limit
        or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
        or info.file_size > MAX_RATIO * max(info.compress_size, 1) + _SMALL_MEMBER_BYTES
    ):
        return
    with archive.open(info) as handle:
        data = handle.read(limit)
    name = first_global(data, max_bytes=limit)
    if name:
        code = classify_global(name, checker.dangerous)
        checker.findings.append(
            Finding(
                code,
                checker.where(info.filename),
                "",
                f"is a pickle that would call {name} when loaded",
                expected="no pickles besides the sample inputs' data.pkl",
                fix="do not ship this file; it may be malicious. " + LAYOUT_FIX,
            )
        )
        return
    kind = describe_head(data[:512])
    if kind:
        checker.layout(f"is a nested {kind.removeprefix('a ').removeprefix('an ')}", info.filename)


def _check_sample_inputs(checker: _Archive, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """The nested torch.save archive of example inputs: exact layout, restricted pickle, storages."""
    member = info.filename
    data = _read_member(checker, archive, info, checker.max_json)
    if data is None:
        return
    inner = _Archive(f"{checker.where(member)}", checker.policy, checker.dangerous)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as nested:
            infos = [m.info for m in check_zip_layout(io.BytesIO(data), nested, len(data))]
            _check_saved_tensors(inner, nested, infos)
    except LayoutError as exc:
        inner.layout(f"(the sample inputs, a torch.save archive) {exc}")
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,
        RuntimeError,
        zlib.error,
    ) as exc:
        inner.findings.append(
            Finding(
                "KS406",
                checker.where(member),
                "",
                f"is not a readable torch.save archive ({type(exc).__name__}: {str(exc)[:160]})",
                expected="the sample inputs torch.export.save writes (a torch.save zip)",
                fix=LAYOUT_FIX,
            )
        )
    checker.findings += inner.findings


def _check_saved_tensors(checker: _Archive, archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    split = _split_root(checker, infos)
    if split is None:
        return
    _prefix, by_name = split
    if "data.pkl" not in by_name:
        checker.layout("(the sample inputs) has no data.pkl")
        return
    storages: dict[str, zipfile.ZipInfo] = {}
    for relative, info in by_name.items():
        match = _SAVE_STORAGE.match(relative)
        if relative == "data.pkl":
            continue
        if match:
            storages[match.group(1)] = info
        elif relative in _SAVE_SMALL and not info.is_dir():
            _check_small(checker, archive, info, _SAVE_SMALL[relative])
        else:
            checker.layout("is not a member torch.save writes", info.filename)
            _diagnose_member(checker, archive, info)
    pickled = by_name["data.pkl"]
    data = _read_member(checker, archive, pickled, checker.rules.max_bytes)
    if data is None:
        return
    report = inspect_pickle(data, checker.rules)
    checker.pickle_findings(pickled.filename, report)
    if report.rejected or report.error:
        return
    for key, info in storages.items():
        ref = report.storages.get(key)
        if ref is None:
            checker.layout("is a storage the pickle does not reference", info.filename)
        elif info.file_size != ref.nbytes:
            checker.layout(
                f"storage is {info.file_size:,} bytes; the pickle declares {ref.nbytes:,}", info.filename
            )
        else:
            _check_raw(checker, archive, info, ref.nbytes)
    for key, ref in report.storages.items():
        if key not in storages and ref.numel > 0:
            checker.layout(
                f"pickle references storage data/{key}, which is not in the archive", pickled.filename
            )
    for key, end in report.extents:
        ref = report.storages.get(key)
        if ref is not None and end > ref.numel:
            checker.layout(
                f"a tensor reads elements up to {end:,} of storage data/{key}, which holds {ref.numel:,}",
                pickled.filename,
            )


def graph_of(path: str, json_depth: int = 64, max_bytes: int = 64 * 1024 * 1024) -> dict[str, Any]:
    """The program JSON (``models/model.json``) of an archive the gate has proven; raises
    ``ValueError`` when it cannot be read (the gate reports why)."""
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.split("/", 1)[-1] == GRAPH]
        if any(n.split("/", 1)[-1].startswith(AOTI_DIR) for n in archive.namelist()):
            raise ValueError(
                "is an AOTInductor package (compiled native code), not a torch.export program; "
                "use the file torch.export.save writes"
            )
        if len(names) != 1:
            raise ValueError(f"has no single {GRAPH}")
        info = archive.getinfo(names[0])
        if info.file_size > max_bytes:
            raise ValueError(f"{GRAPH} is larger than {max_bytes:,} bytes")
        with archive.open(info) as handle:
            value = loads_strict(handle.read(max_bytes + 1), max_depth=json_depth)
    if not isinstance(value, dict):
        raise ValueError(f"{GRAPH} is not a JSON object")
    return value
