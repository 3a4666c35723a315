"""The artifact gate: a kernel holds only what the contract names, each file proven by content.

Deny by default. Every entry of the kernel gets a role from the contract and the artifact policy:
the metadata, the model file named by ``model_file`` (and, for ONNX, the external data files the
model itself names), ``samples/*.json``, ``requirements.txt``, the handler named by
``preprocessing.handler``, top-level documentation (``README.md``, ``*.md``, ``LICENSE``) and
whatever Ops list in ``extra_files``. Anything else (another file, a hidden file, ``__pycache__``,
a ``.pyc``, a folder outside the layout, a link, a device or FIFO) is a finding, and the gate says
what the file really is when it can (an archive, a pickle calling ``os.system``...).

Each allowed file is then proven to be what its role says, by parsing it: strict JSON within a
depth limit, UTF-8 text without NUL bytes that is not a pickle, an ONNX ModelProto whose external
data is exactly tensor bytes inside the kernel, a TorchScript archive with exactly torch's layout
whose pickles the real unpickler parses under an allow-list (``shim.policy.torchscript_archive``).

The content scan runs in a child process with the policy's time and memory budget
(``shim.sandbox``); ``scan_kernel`` is the same scan in-process, for tests and tools.
"""

from __future__ import annotations

import fnmatch
import gzip
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from shim.findings import Finding
from shim.kernelfs import KernelFileError, read_regular
from shim.policy.inventory import DIRECTORY, FILE, LINK, Entry, Inventory, display_name, walk
from shim.policy.restricted_pickle import classify_global, first_global
from shim.policy.sniff import SNIFF_BYTES, describe_head, npy_holds_objects
from shim.strict_json import StrictJSONError, loads_strict

METADATA, MODEL, EXTERNAL_DATA, SAMPLE, REQUIREMENTS, HANDLER, DOCUMENTATION = (
    "metadata",
    "model",
    "external data",
    "golden sample",
    "requirements",
    "handler",
    "documentation",
)
#: The training profile named by ``monitoring.profile``: strict JSON within role_limits.profile.
PROFILE = "profile"
DEFAULT_PROFILE_BYTES = 2 * 1024 * 1024
SAMPLES_DIR = "samples"
#: Text roles and their size cap in role_limits.
TEXT_LIMITS = {REQUIREMENTS: "requirements", HANDLER: "handler", DOCUMENTATION: "documentation"}
#: Findings of one kind listed one by one before the rest are summed up in one finding.
MAX_LISTED = 25
#: Bytes of a refused file read to say what it really is.
DIAGNOSIS_BYTES = 64 * 1024 * 1024
#: Seconds the diagnosis of refused files may take, one file and all together. Diagnosis only
#: words a finding (the file is refused by its role already), so a file built to be slow to
#: diagnose (millions of globals, pickles back to back) costs the scan at most this much.
DIAGNOSIS_SECONDS_PER_FILE, DIAGNOSIS_SECONDS = 1.0, 2.5
KERNEL_FILES = (
    "only model_metadata.json, the model file named by model_file (with the external data "
    "files an ONNX model names), samples/*.json, requirements.txt, the handler named by "
    "preprocessing.handler, and documentation (README.md, *.md, LICENSE)"
)
REMOVE_FIX = (
    "remove it from the kernel: keep data in the dataset store (training_dataset), code in the "
    "handler, weights inside the model file; Ops can allow more files in "
    "policies/artifact_policy.yaml (extra_files)"
)


@dataclass(frozen=True)
class Declaration:
    """What the contract names, read tolerantly: the gate runs even when the metadata is broken."""

    model_file: str | None = None
    framework: str | None = None
    handler: str | None = None
    profile: str | None = None

    @classmethod
    def from_metadata(cls, metadata: Any) -> Declaration:
        if not isinstance(metadata, dict):
            return cls()
        handler = (
            (metadata.get("preprocessing") or {}) if isinstance(metadata.get("preprocessing"), dict) else {}
        )
        values = (metadata.get("model_file"), metadata.get("framework"), handler.get("handler"))
        model_file, framework, handler_name = (v if isinstance(v, str) and v else None for v in values)
        monitoring = metadata.get("monitoring")
        profile = monitoring.get("profile") if isinstance(monitoring, dict) else None
        profile = profile if isinstance(profile, str) and profile.endswith(".json") else None
        return cls(_top_level(model_file), framework, _top_level(handler_name), _top_level(profile))


def _top_level(name: str | None) -> str | None:
    """Only a plain top-level file name can be a role (the schema enforces the same)."""
    if name is None or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        return None
    return name


@dataclass
class GateResult:
    findings: list[Finding] = field(default_factory=list)
    #: kernel-relative paths no other check may open (links, special files, refused content)
    refused: set[str] = field(default_factory=set)

    def blocks(self, relative: str) -> bool:
        return "*" in self.refused or relative in self.refused


class _Scan:
    def __init__(
        self, root: Path, policy: Mapping[str, Any], declaration: Declaration, progress: Callable[[str], None]
    ) -> None:
        self.root = root
        self.policy = policy
        self.declaration = declaration
        self.progress = progress
        self.result = GateResult()
        self.limits: Mapping[str, int] = policy["role_limits"]
        self.listed: dict[str, int] = {}
        self.diagnosis_left = DIAGNOSIS_SECONDS
        self.inventory = Inventory(root, [])
        self.model_names = {n for entry in policy["frameworks"].values() for n in entry["model_files"]}
        patterns = policy.get("dangerous_pickle_globals") or []
        self.dangerous: Callable[[str], bool] = lambda name: any(
            fnmatch.fnmatchcase(name, p) for p in patterns
        )

    # -- reporting ------------------------------------------------------------------------------
    def display(self, relative: str) -> str:
        return str(self.root / display_name(relative))

    def add(
        self,
        code: str,
        relative: str | None,
        message: str,
        expected: str,
        fix: str,
        refuse: bool = True,
        where: str = "",
    ) -> None:
        if relative is not None and refuse:
            self.result.refused.add(relative)
        count = self.listed[code] = self.listed.get(code, 0) + 1
        if count > MAX_LISTED:
            return
        file = self.display(relative) if relative is not None else str(self.root)
        self.result.findings.append(Finding(code, file, where, message, expected=expected, fix=fix))

    def summarize(self) -> None:
        for code, count in self.listed.items():
            if count > MAX_LISTED:
                self.result.findings.append(
                    Finding(
                        code,
                        str(self.root),
                        "",
                        f"and {count - MAX_LISTED:,} more findings like the ones above",
                        expected=KERNEL_FILES,
                        fix=REMOVE_FIX,
                    )
                )

    # -- layout ---------------------------------------------------------------------------------
    def run(self) -> GateResult:
        # Every folder is entered (within the entry cap) so that each refused file is named.
        inventory = self.inventory = walk(self.root, int(self.policy["max_entries"]), lambda _rel: True)
        if inventory.truncated:
            self.add(
                "KS409",
                None,
                f"has more than {self.policy['max_entries']:,} files and folders",
                expected=f"at most {self.policy['max_entries']:,} entries: {KERNEL_FILES}",
                fix=REMOVE_FIX,
            )
        total = sum(e.size for e in inventory.entries)
        cap = int(self.policy["max_kernel_size_bytes"])
        if total > cap:
            self.add(
                "KS401",
                None,
                f"kernel is {total:,} bytes; the cap is {cap:,} bytes",
                expected=f"at most {cap:,} bytes in all files together",
                fix="remove files the model does not need at inference time (data sets, checkpoints, logs)",
            )
        roles, pending = self.assign_roles(inventory)
        self.check_contents(roles, pending)
        self.summarize()
        return self.result

    def assign_roles(self, inventory: Inventory) -> tuple[dict[str, str], list[Entry]]:
        roles: dict[str, str] = {}
        pending: list[Entry] = []
        samples = 0
        parents = {e.relative.rsplit("/", 1)[0] for e in inventory.entries if "/" in e.relative}
        for entry in inventory.entries:
            if entry.kind == LINK:
                self._link(entry)
            elif entry.kind == DIRECTORY:
                if entry.relative != SAMPLES_DIR and entry.relative not in parents:
                    self.refuse_entry(entry, "folder")  # an empty folder; a full one is named by its files
            elif entry.kind == FILE and entry.links > 1:
                self._hard_link(entry)
            elif entry.kind != FILE:
                self.add(
                    "KS405",
                    entry.relative,
                    "is a special file (device, FIFO or socket); it is never opened",
                    expected="regular files only",
                    fix="remove it from the kernel",
                )
            else:
                role = self.role_of(entry.relative)
                if role == SAMPLE:
                    samples += 1
                if role is None:
                    pending.append(entry)
                else:
                    roles[entry.relative] = role
        if samples > self.limits["samples_count"]:
            self.add(
                "KS409",
                SAMPLES_DIR,
                f"holds {samples} golden samples; at most {self.limits['samples_count']} are allowed",
                expected="a few representative samples",
                fix="keep the samples that cover distinct behaviour",
                refuse=False,
            )
        return roles, pending

    def _link(self, entry: Entry) -> None:
        self.add(
            "KS405",
            entry.relative,
            "is a symbolic link; links are never followed or read",
            expected="regular files only (images and uploads copy links ambiguously, and a link "
            "can point at secrets outside the kernel)",
            fix="replace the link with the file itself, or remove it",
        )

    def _hard_link(self, entry: Entry) -> None:
        self.add(
            "KS411",
            entry.relative,
            f"has {entry.links} hard links: it is another name for a file that may lie outside the "
            "kernel, so it is never read",
            expected="regular files with one name each (git, copies and archives never create hard links)",
            fix="replace it with a copy of the file (cp --remove-destination SRC DEST), or remove it",
        )

    def role_of(self, relative: str) -> str | None:
        declaration = self.declaration
        if relative == "model_metadata.json":
            return METADATA
        if relative == declaration.model_file or (
            declaration.model_file is None and relative in self.model_names
        ):
            return MODEL  # with unreadable metadata, any allowed model name is checked as the model
        if relative == "requirements.txt":
            return REQUIREMENTS
        if relative == declaration.handler and relative.endswith(".py"):
            return HANDLER
        if relative == declaration.profile and relative != "model_metadata.json":
            return PROFILE
        folder, _, name = relative.rpartition("/")
        if folder == SAMPLES_DIR:
            return SAMPLE if name.endswith(".json") and not name.startswith(".") else None
        if folder:
            return None
        if any(fnmatch.fnmatchcase(relative, p) for p in self.policy.get("documentation") or ()):
            return DOCUMENTATION
        for index, extra in enumerate(self.policy.get("extra_files") or ()):
            if fnmatch.fnmatchcase(relative, extra["pattern"]):
                return f"extra:{index}"
        return None

    def inventory_entry(self, relative: str) -> Entry | None:
        """The entry if it is a regular file of the kernel (links and special files never are)."""
        entry = self.inventory.get(relative)
        return entry if entry is not None and entry.kind == FILE else None

    def refuse_entry(self, entry: Entry, what: str) -> None:
        name = entry.relative.rsplit("/", 1)[-1]
        suffix = PurePosixPath(name).suffix.lower()
        reasons: Mapping[str, str] = self.policy.get("forbidden_extensions") or {}
        if name == "__pycache__":
            reason = (
                "compiled Python caches are imported instead of the reviewed source; ship only the "
                "handler's .py"
            )
        elif name.startswith("."):
            reason = f"hidden {what}s are not part of a kernel (nothing reviews what they hold)"
        elif suffix in reasons:
            reason = reasons[suffix]
        elif what == "folder" or ("/" in entry.relative and not entry.relative.startswith(SAMPLES_DIR + "/")):
            reason = "folders other than samples/ are not part of a kernel"
        else:
            reason = "it is not a file the contract names"
        self.add(
            "KS402",
            entry.relative,
            f"is not allowed in a kernel: {reason}",
            expected=KERNEL_FILES,
            fix=REMOVE_FIX,
        )
        if entry.kind == FILE and self.listed["KS402"] <= MAX_LISTED:
            self.diagnose(entry.relative, entry.size)

    # -- content --------------------------------------------------------------------------------
    def check_contents(self, roles: dict[str, str], pending: list[Entry]) -> None:
        external: dict[str, list[tuple[int, int]]] = {}
        for relative, role in roles.items():
            self.progress(self.display(relative))
            try:
                external |= self.check_role(relative, role)
            except Exception as exc:  # a defect of the gate: the file is refused, the rest still checked
                self.add("KS406", relative, f"could not be checked ({type(exc).__name__}); it is refused",
                         expected="a file the gate can read", fix="re-export the file; report this to Ops")
        for entry in pending:
            if entry.relative in external:
                self.progress(self.display(entry.relative))
                self.check_external_data(entry, external.pop(entry.relative))
            else:
                self.progress(self.display(entry.relative))
                self.refuse_entry(entry, "file")

    def check_role(self, relative: str, role: str) -> dict[str, list[tuple[int, int]]]:
        """Prove one file is what its role says; returns the external data an ONNX model names."""
        if role == MODEL:
            return self.check_model(relative)
        if role == SAMPLE:
            self.check_json(relative, self.limits["sample"], "KS302")
        elif role == METADATA:
            self.check_metadata(relative)
        elif role == PROFILE:
            self.check_json(relative, int(self.limits.get("profile", DEFAULT_PROFILE_BYTES)), "KS407")
        elif role in TEXT_LIMITS:
            self.check_text(relative, self.limits[TEXT_LIMITS[role]], role)
        else:
            extra = self.policy["extra_files"][int(role.split(":")[1])]
            if extra["kind"] == "json":
                self.check_json(relative, int(extra["max_bytes"]), "KS407")
            else:
                self.check_text(relative, int(extra["max_bytes"]), "allowed text file")
        return {}

    def read(self, relative: str, limit: int) -> bytes | None:
        try:
            return read_regular(self.root / relative, limit)
        except KernelFileError as exc:
            code = {"too-large": "KS409", "hardlink": "KS411"}.get(exc.kind, "KS405")
            self.add(
                code,
                relative,
                str(exc),
                expected=f"a regular file of at most {limit:,} bytes",
                fix="make the file smaller (policies/artifact_policy.yaml, role_limits, sets the caps)"
                if code == "KS409"
                else "replace it with a regular file",
            )
            return None

    def check_metadata(self, relative: str) -> None:
        """The contract reader reports JSON and schema errors (KS003/KS004); the gate proves only
        that the file is no pickle or archive in disguise, so the gate alone (``shim hook
        no-pickle``) refuses one too."""
        data = self.read(relative, self.limits["metadata"])
        if data is None:
            return
        try:
            loads_strict(data, max_depth=int(self.limits["json_depth"]))
        except StrictJSONError:
            self.diagnose(relative, len(data), data)

    def check_json(self, relative: str, limit: int, code: str) -> None:
        data = self.read(relative, limit)
        if data is None:
            return
        try:
            value = loads_strict(data, max_depth=int(self.limits["json_depth"]))
        except StrictJSONError as exc:
            self.add(
                code,
                relative,
                f"is not strict JSON: {exc}",
                expected="one UTF-8 JSON object within "
                f"{self.limits['json_depth']} levels of nesting, unique keys, finite numbers",
                fix="fix the JSON at that spot, or regenerate the file",
                where=exc.location,
            )
            self.diagnose(relative, len(data), data)
            return
        if not isinstance(value, dict):
            self.add(
                code,
                relative,
                f"holds a JSON {type(value).__name__}, not an object",
                expected="one JSON object",
                fix="regenerate the file",
            )

    def check_text(self, relative: str, limit: int, role: str) -> None:
        data = self.read(relative, limit)
        if data is None:
            return
        problem = None
        if b"\x00" in data:
            problem = "holds NUL bytes (binary content)"
        else:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                problem = f"is not UTF-8 text (invalid byte at offset {exc.start})"
        kind = describe_head(data[:SNIFF_BYTES])
        if problem or kind:
            self.add(
                "KS407",
                relative,
                f"{problem or 'is ' + str(kind)}; a {role} file must be plain text",
                expected="UTF-8 text without NUL bytes",
                fix="save the file as plain UTF-8 text",
            )
        self.diagnose(relative, len(data), data, quiet_unless_pickle=True)

    def diagnose(
        self, relative: str, size: int, data: bytes | None = None, quiet_unless_pickle: bool = False
    ) -> None:
        """Say what a refused file really is: a pickle that would call a global (KS403/KS404), or a
        container (in the KS407 message). Never needed to refuse it: the role check already did,
        so it runs within a time budget (``DIAGNOSIS_SECONDS``) and simply stops when that is spent."""
        if self.diagnosis_left <= 0:
            return
        started = time.monotonic()
        try:
            self._diagnose(relative, size, data, quiet_unless_pickle,
                           started + min(DIAGNOSIS_SECONDS_PER_FILE, self.diagnosis_left))
        finally:
            self.diagnosis_left -= time.monotonic() - started

    def _diagnose(
        self, relative: str, size: int, data: bytes | None, quiet_unless_pickle: bool, deadline: float
    ) -> None:
        if data is None:
            try:
                data = read_regular(self.root / relative, max(size, 1)) if size <= DIAGNOSIS_BYTES else None
            except KernelFileError:
                return
            if data is None:
                return
        payloads = [data]
        if data[:2] == b"\x1f\x8b":
            payloads.append(_gunzip_head(data))
        if data.startswith(b"\x93NUMPY") and npy_holds_objects(data):
            self.add(
                "KS403",
                relative,
                "is a numpy array of Python objects: loading it unpickles them",
                expected="no pickled objects in a kernel",
                fix=REMOVE_FIX,
            )
        for payload in payloads:
            offset = payload.find(b"\x80", 0, 4096) if payload.startswith(b"\x93NUMPY") else 0
            name = first_global(payload[max(offset, 0) :], max_bytes=DIAGNOSIS_BYTES, deadline=deadline)
            if name:
                code = classify_global(name, self.dangerous)
                self.add(
                    code,
                    relative,
                    f"is a pickle that would call {name} when loaded"
                    + (" (it can run commands or code)" if code == "KS403" else ""),
                    expected="no pickles in a kernel (only inside the model archive, as torch writes them)",
                    fix="do not ship this file; it may be malicious. " + REMOVE_FIX,
                )
                return
        if not quiet_unless_pickle:
            kind = describe_head(data[:SNIFF_BYTES])
            if kind:
                self.add("KS407", relative, f"is really {kind}", expected=KERNEL_FILES, fix=REMOVE_FIX)

    def check_model(self, relative: str) -> dict[str, list[tuple[int, int]]]:
        from shim.policy.model_content import check_model_content

        findings, external = check_model_content(self, relative)
        for finding in findings:
            self.result.refused.add(relative)
            self.result.findings.append(finding)
        return external

    def check_external_data(self, entry: Entry, ranges: list[tuple[int, int]]) -> None:
        from shim.policy.model_content import check_external_data

        for finding in check_external_data(self, entry, ranges):
            self.result.refused.add(entry.relative)
            self.result.findings.append(finding)


def _gunzip_head(data: bytes, limit: int = 1024 * 1024) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, limit)
    except (zlib.error, gzip.BadGzipFile):
        return b""


def scan_kernel(
    root: Path | str,
    policy: Mapping[str, Any],
    declaration: Declaration,
    progress: Callable[[str], None] = lambda _label: None,
) -> GateResult:
    """The whole gate in this process (no budget): layout, roles and content."""
    return _Scan(Path(root), policy, declaration, progress).run()


def scan_in_child(payload: dict[str, Any], progress: Callable[[str], None]) -> dict[str, Any]:
    """``scan_kernel`` as the sandboxed child runs it; the result is JSON for the parent."""
    declaration = Declaration(**payload["declaration"])
    result = scan_kernel(payload["root"], payload["policy"], declaration, progress)
    return {"findings": [f.to_dict() for f in result.findings], "refused": sorted(result.refused)}


def check_artifacts(root: Path | str, policy: Mapping[str, Any], declaration: Declaration) -> GateResult:
    """The gate in a child process with the policy's scan budget; a budget overrun is a finding."""
    from shim.sandbox import Budget, SandboxFailure, run_isolated

    root = Path(root)
    payload = {"root": str(root.absolute()), "policy": dict(policy), "declaration": declaration.__dict__}
    try:
        answer = run_isolated("shim.policy.gate:scan_in_child", payload, Budget.from_policy(policy["scan"]))
    except SandboxFailure as exc:
        where = exc.last or str(root)
        return GateResult(
            [
                Finding(
                    "KS410",
                    where,
                    "",
                    f"checking this file {exc}; the kernel is refused",
                    expected="files the gate can check within policies/artifact_policy.yaml's scan budget",
                    fix="remove the file, or re-export it: a file this costly to check is no normal artifact",
                )
            ],
            refused={"*"},
        )
    findings = [Finding(**{k: v for k, v in f.items() if k != "title"}) for f in answer["findings"]]
    return GateResult(findings, set(answer["refused"]))
