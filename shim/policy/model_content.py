"""Content proof of the model file (and ONNX external data) for the artifact gate.

The framework decides what the file must be: an ONNX ModelProto, or a TorchScript archive with
torch's exact layout. When the metadata is too broken to say, the file's own first bytes choose
(a zip is checked as TorchScript, anything else as ONNX), so a hostile model is still examined.
"""

from __future__ import annotations

import os
import time
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from shim.findings import Finding
from shim.kernelfs import KernelFileError, open_regular
from shim.policy.inventory import Entry
from shim.policy.onnx_file import MAX_PADDING, external_data, uncovered
from shim.policy.sniff import SNIFF_BYTES, describe_head
from shim.policy.torch_export_archive import check_torch_export_archive
from shim.policy.torchscript_archive import check_torchscript_archive

if TYPE_CHECKING:
    from shim.policy.gate import _Scan

_ZIP = b"PK\x03\x04"
#: protobuf messages (an ONNX ModelProto without external data) are smaller than 2 GiB
_PROTOBUF_LIMIT = 2 * 1024 * 1024 * 1024
_REEXPORT = (
    "re-export the model (torch.onnx.export, skl2onnx, onnx.save, torch.export.save or torch.jit.save) "
    "from trusted code"
)


def _head(scan: _Scan, relative: str) -> bytes | None:
    try:
        descriptor = open_regular(scan.root / relative)
    except KernelFileError as exc:
        scan.add("KS405", relative, str(exc), expected="a regular file", fix="replace it with the model file")
        return None
    try:
        return os.pread(descriptor, SNIFF_BYTES, 0)
    finally:
        os.close(descriptor)


def check_model_content(scan: _Scan, relative: str) -> tuple[list[Finding], dict[str, list[tuple[int, int]]]]:
    head = _head(scan, relative)
    if head is None:
        return [], {}
    display = scan.display(relative)
    framework = scan.declaration.framework or _framework_of(relative, head)
    if framework in _ARCHIVES:
        expected, writer, check = _ARCHIVES[framework]
        if not head.startswith(_ZIP):
            return _not_the_model(scan, relative, head, expected) or [
                Finding(
                    "KS408",
                    display,
                    "",
                    f"does not start with a zip member, as {writer} archives do",
                    expected=expected,
                    fix=_REEXPORT,
                )
            ], {}
        try:
            descriptor = open_regular(scan.root / relative)
        except KernelFileError as exc:
            return [Finding("KS405", display, "", str(exc), expected="a regular file",
                            fix="replace it with the model file")], {}
        with os.fdopen(descriptor, "rb") as handle:
            return check(handle, display, scan.policy, scan.dangerous, scan.progress), {}
    if framework != "onnx":
        # no reader proves this file, so it is refused (the schema reports the framework too),
        # and the finding says what it really is: the gate alone (no-pickle hook) must refuse it
        return _not_the_model(scan, relative, head, "a model of an allowed framework") or [
            Finding(
                "KS402",
                display,
                "",
                f"is the model of framework {framework[:40]!r}, which policies/artifact_policy.yaml does "
                "not allow; nothing can prove what it holds",
                expected=f"a model of one of: {', '.join(sorted(scan.policy['frameworks']))}",
                fix=_REEXPORT,
            )
        ], {}
    expected = "an ONNX model (a protobuf ModelProto)"
    findings = _not_the_model(scan, relative, head, expected)  # a pickle or archive posing as the model
    if findings:
        return findings, {}
    findings, external = _check_onnx(scan, relative, display)
    if not findings:
        try:
            descriptor = open_regular(scan.root / relative)
        except KernelFileError:
            descriptor = -1
        if descriptor >= 0:
            try:
                smuggled = _smuggled(descriptor)
            finally:
                os.close(descriptor)
            if smuggled:
                findings.append(Finding("KS407", display, "", f"is an ONNX model that is also {smuggled}",
                                        expected=expected, fix=_REEXPORT))
    if findings and findings[0].code == "KS103" and _ZIP in head:
        findings.insert(
            0,
            Finding(
                "KS407",
                display,
                "",
                f"holds a zip archive at byte {head.index(_ZIP):,}, not {expected}",
                expected=expected,
                fix=_REEXPORT,
            ),
        )
    return findings, external


#: zip-based frameworks: what the model must be, who writes it, and the check proving its layout
_ARCHIVES = {
    "torchscript": ("a TorchScript archive (torch.jit.save)", "torch.jit.save", check_torchscript_archive),
    "torch_export": (
        "a torch.export archive (torch.export.save)", "torch.export.save", check_torch_export_archive
    ),
}


def _framework_of(relative: str, head: bytes) -> str:
    """With unreadable metadata the file itself chooses: a zip is a torch archive (torch.export
    when named .pt2), anything else is checked as ONNX, so a hostile model is still examined."""
    if not head.startswith(_ZIP):
        return "onnx"
    return "torch_export" if relative.endswith(".pt2") else "torchscript"


def _not_the_model(scan: _Scan, relative: str, head: bytes, expected: str) -> list[Finding]:
    """KS407 naming what the file really is (plus KS403/KS404 if it is a pickle), or [] if unknown."""
    before = len(scan.result.findings)
    scan.diagnose(relative, (scan.root / relative).lstat().st_size, quiet_unless_pickle=True)
    pickled = scan.result.findings[before:]
    del scan.result.findings[before:]
    kind = describe_head(head) or ("a pickle" if pickled else None)
    if kind is None:
        return []
    return [
        Finding(
            "KS407",
            scan.display(relative),
            "",
            f"is {kind}, not {expected}",
            expected=expected,
            fix=_REEXPORT,
        ),
        *pickled,
    ]


def _check_onnx(
    scan: _Scan, relative: str, display: str
) -> tuple[list[Finding], dict[str, list[tuple[int, int]]]]:
    from shim.onnx_skeleton import load_skeleton

    try:
        # through the descriptor the gate proved is a regular file: a link swapped in since is
        # refused; structure and external-data references only, never the tensor values
        with os.fdopen(open_regular(scan.root / relative), "rb") as handle:
            if os.fstat(handle.fileno()).st_size >= _PROTOBUF_LIMIT:  # never read a sparse giant
                raise ValueError("is 2 GiB or larger: protobuf cannot hold it (use external data)")
            model = load_skeleton(handle)
    except KernelFileError as exc:
        return [Finding("KS405", display, "", str(exc), expected="a regular file",
                        fix="replace it with the model file")], {}
    except Exception as exc:  # protobuf DecodeError and friends
        return [
            Finding(
                "KS103",
                display,
                "",
                f"is not a readable ONNX model: {str(exc)[:200]}",
                expected="an ONNX ModelProto (torch.onnx.export, skl2onnx, onnx.save)",
                fix="re-export the model; the file may be truncated or not ONNX",
            )
        ], {}
    if model.ir_version <= 0 or not model.HasField("graph"):
        return [
            Finding(
                "KS103",
                display,
                "",
                "parses as protobuf but has no ONNX ir_version or graph",
                expected="an ONNX ModelProto",
                fix=_REEXPORT,
            )
        ], {}
    allowed = bool((scan.policy["frameworks"].get("onnx") or {}).get("external_data"))
    references = external_data(model, PurePosixPath(relative).parent)
    findings = [
        Finding(
            "KS105",
            display,
            f"tensor {name[:80]!r}",
            f"external data location {location[:120]!r} {problem}",
            expected="external data files inside the kernel, next to the model",
            fix="re-save with onnx.save_model(model, path, save_as_external_data=False) (under 2 GB)",
        )
        for name, location, problem in references.problems
    ]
    for location in references.ranges:
        entry = scan.inventory_entry(location)
        problem = None
        if not allowed:
            problem = "is not allowed: policies/artifact_policy.yaml does not allow ONNX external data"
        elif scan.role_of(location) is not None or location.startswith("samples/"):
            problem = "is a file with another role in the kernel (metadata, model, sample, handler, docs)"
        elif entry is None:
            problem = "is missing from the kernel (or is not a regular file)"
        if problem:
            findings.append(
                Finding(
                    "KS105",
                    display,
                    "",
                    f"external data location {location[:120]!r} {problem}",
                    expected="external data files inside the kernel, named by the model",
                    fix="save the model's external data next to it, or inside the model file",
                )
            )
    return findings, ({} if findings else references.ranges)


def check_external_data(scan: _Scan, entry: Entry, ranges: list[tuple[int, int]]) -> list[Finding]:
    """The file is exactly tensor data: every byte read by some tensor, or zero padding."""
    display = scan.display(entry.relative)
    fix = "re-save with onnx.save_model(..., save_as_external_data=True): the file must hold only tensors"
    if max(end for _, end in ranges) > entry.size:
        return [
            Finding(
                "KS407",
                display,
                "",
                f"is {entry.size:,} bytes but the model's tensors read up to byte "
                f"{max(end for _, end in ranges):,}",
                expected="the tensor data the model names",
                fix=fix,
            )
        ]
    try:
        descriptor = open_regular(scan.root / entry.relative)
    except KernelFileError as exc:
        return [Finding("KS405", display, "", str(exc), expected="a regular file", fix=fix)]
    try:
        for start, end in uncovered(ranges, entry.size):
            gap = os.pread(descriptor, min(end - start, MAX_PADDING + 1), start)
            if end - start > MAX_PADDING or gap.strip(b"\x00"):
                return [
                    Finding(
                        "KS407",
                        display,
                        "",
                        f"holds {end - start:,} bytes at offset {start:,} that no tensor of the model reads",
                        expected="only tensor data (and zero padding)",
                        fix=fix,
                    )
                ]
        smuggled = _smuggled(descriptor)
        if smuggled:
            return [
                Finding(
                    "KS407",
                    display,
                    "",
                    f"is tensor data that is also {smuggled}: another reader would open it as such",
                    expected="plain tensor data (numbers), not an archive or a pickle",
                    fix="do not ship this file; it may be malicious. " + fix,
                )
            ]
    finally:
        os.close(descriptor)
    return []


#: Bytes of a data file (ONNX model, external data) read to see whether it is also a container.
_SMUGGLE_HEAD_BYTES = 1024 * 1024


def _smuggled(descriptor: int) -> str | None:
    """What else a data file is, besides what its role reads (a polyglot): a zip archive found
    from its end record (as ``zipfile``, ``torch.load`` and unzip find one, whatever precedes it),
    a container or executable at its start, or a pickle at its start that would call a global.
    Tensor bytes and protobuf are none of these by accident."""
    import zipfile

    from shim.policy.restricted_pickle import first_global

    with os.fdopen(os.dup(descriptor), "rb") as handle:
        if zipfile.is_zipfile(handle):
            return "a zip archive (its end record is at the end of the file)"
        head = os.pread(descriptor, _SMUGGLE_HEAD_BYTES, 0)
    kind = describe_head(head[:SNIFF_BYTES])
    if kind:
        return kind
    name = first_global(head, max_pickles=1, deadline=time.monotonic() + 1.0)
    return f"a pickle that would call {name}" if name else None
