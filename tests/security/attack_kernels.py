"""Hostile kernels from the attacker's review of the deny-by-default gate (issue 10, second pass).

Each entry is a hole the first redesign still had, or a bypass an outside scanner corpus is known
to try, built from raw bytes (pickle opcodes written by hand, zip members written by ``zipfile``,
links and hard links made with ``os``): nothing here unpickles or imports anything. Payloads that
would run code create ``<markers>/<entry name>`` (``touch``), so a test can prove nothing ran.

    resources   a pickle naming the same allowed global two million times (the old merge of the two
                parses' global lists was quadratic: a hang); 500,000 TorchScript class names; many
                refused pickles that are slow to diagnose; 200,000 storage references; 50,000 stray
                archive members; twenty slow ``.debug_pkl`` pickles in one archive
    leaks       hard links (a second name of a file outside the kernel, no privilege needed) as
                requirements.txt, model_metadata.json, README.md and a golden sample: their lines
                were echoed in KS501/KS004 findings
    crashes     a metadata integer of 5,000 digits (CPython's int() limit: exit 70)
    content     JSON that is not UTF-8 (UTF-16, a byte-order mark, a lone surrogate escape); ONNX
                external data pointing at a file with another role (README.md); a pickle as the
                model of a framework the policy does not allow (the gate alone, ``shim hook
                no-pickle``, passed it); a pickle as model_metadata.json (no-pickle passed it)
    hooks       the hook cache hashed every file before the gate ran: a sparse 50 GiB file hung it,
                100,000 files took half a minute, 1,500 nested folders crashed ``os.walk`` (exit 70),
                and a FIFO model_metadata.json made the kernel invisible (exit 0)
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.security import hostile_classes as hc
from tests.security.build_corpus import ONNX_BASE, TORCHSCRIPT_BASE

Build = Callable[[Path, Path], None]  # (kernel dir, marker file)


@dataclass(frozen=True)
class Attack:
    name: str
    what: str
    build: Build
    #: relative names a finding may give for the offending file (or "." for the kernel itself)
    files: tuple[str, ...]
    codes: frozenset[str]
    #: the command after ``shim``; KERNEL is replaced by the kernel path, METADATA by its metadata file
    command: tuple[str, ...] = ("validate", "--format", "json", "--skip-samples", "KERNEL")
    #: text that must not appear in stdout/stderr (besides the canary environment variable)
    secret: str | None = None
    heavy: bool = False
    extra: dict = field(default_factory=dict)


def _touch(marker: Path) -> bytes:
    return f"touch {marker}".encode()


def posix_system(marker: Path) -> bytes:
    """Protocol 2: GLOBAL posix.system, BINUNICODE command, TUPLE1, REDUCE, STOP."""
    command = _touch(marker)
    return b"\x80\x02cposix\nsystem\nX" + struct.pack("<I", len(command)) + command + b"\x85R."


def repeated_global(count: int, tail: bytes = b"N.") -> bytes:
    """An allowed global (collections.OrderedDict) named ``count`` times, each POPped."""
    return b"\x80\x02" + b"ccollections\nOrderedDict\n0" * count + tail


def many_torch_classes(count: int) -> bytes:
    return b"\x80\x02" + b"".join(b"c__torch__.m\nC%d\n0" % i for i in range(count)) + b"N."


def missing_storages(count: int) -> bytes:
    """``count`` persistent ids ('storage', FloatStorage, key, 'cpu', 1) to storages not in the archive."""
    def one(i: int) -> bytes:
        key = str(i).encode()
        return (b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX" + struct.pack("<I", len(key)) + key
                + b"X\x03\x00\x00\x00cpuK\x01tQ0")
    return b"\x80\x02" + b"".join(one(i) for i in range(count)) + b"N."


def _copy(base: Path, kernel: Path) -> None:
    shutil.copytree(base, kernel, symlinks=True)


def _metadata(kernel: Path, change: Callable[[dict], None]) -> None:
    path = kernel / "model_metadata.json"
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata, indent=1))


def _torchscript(change: Callable[[str, dict[str, bytes]], None]) -> Build:
    def build(kernel: Path, _marker: Path) -> None:
        _copy(TORCHSCRIPT_BASE, kernel)
        prefix, members = hc._torchscript_members()
        change(prefix, members)
        hc._write_zip(kernel / "model.pt", members)
    return build


def _file(relative: str, data: Callable[[Path], bytes], base: Path = ONNX_BASE) -> Build:
    def build(kernel: Path, marker: Path) -> None:
        _copy(base, kernel)
        path = kernel / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data(marker))
    return build


PASSWD_LIKE = "root:x:0:0:root:/root:/bin/bash-kernelshim-outside\n"
SECRET_JSON = '{"name": "outside-secret-kernelshim", "framework": 7}'


def _hard_link(relative: str, content: str) -> Build:
    """``relative`` becomes a second name of a file outside the kernel."""
    def build(kernel: Path, _marker: Path) -> None:
        _copy(ONNX_BASE, kernel)
        outside = kernel.parent / f"{kernel.name}.outside"
        outside.write_text(content)
        target = kernel / relative
        target.unlink(missing_ok=True)
        os.link(outside, target)
    return build


def _sparse(relative: str, size: int) -> Build:
    def build(kernel: Path, _marker: Path) -> None:
        _copy(ONNX_BASE, kernel)
        with open(kernel / relative, "wb") as handle:
            handle.truncate(size)
    return build


def _many_files(count: int) -> Build:
    def build(kernel: Path, _marker: Path) -> None:
        _copy(ONNX_BASE, kernel)
        for index in range(count):
            (kernel / f"f{index}").touch()
    return build


def _deep_folders(levels: int) -> Build:
    def build(kernel: Path, _marker: Path) -> None:
        _copy(ONNX_BASE, kernel)
        folder = os.open(kernel, os.O_RDONLY)
        try:
            for _ in range(levels):
                os.mkdir("d", dir_fd=folder)
                inner = os.open("d", os.O_RDONLY, dir_fd=folder)
                os.close(folder)
                folder = inner
        finally:
            os.close(folder)
    return build


def _slow_to_diagnose(kernel: Path, marker: Path, count: int) -> None:
    _copy(ONNX_BASE, kernel)
    data = repeated_global(600_000, posix_system(marker)[2:])
    for index in range(count):
        (kernel / f"w{index}.dat").write_bytes(data)


def _fifo_metadata(kernel: Path, _marker: Path) -> None:
    _copy(ONNX_BASE, kernel)
    (kernel / "model_metadata.json").unlink()
    os.mkfifo(kernel / "model_metadata.json")


def _foreign_framework(kernel: Path, marker: Path) -> None:
    _copy(ONNX_BASE, kernel)
    _metadata(kernel, lambda m: m.update(framework="sklearn", model_file="model.pkl"))
    (kernel / "model.onnx").unlink()
    (kernel / "model.pkl").write_bytes(posix_system(marker))


def _external_data_in_readme(kernel: Path, _marker: Path) -> None:
    """The If-subgraph model of test_gate_properties with its weights read from README.md."""
    import onnx

    from tests.security.test_gate_properties import _if_subgraph_kernel

    _if_subgraph_kernel(kernel)
    weights = (kernel / "weights.bin").read_bytes()
    (kernel / "weights.bin").unlink()
    (kernel / "README.md").write_bytes(weights)
    model = onnx.load(str(kernel / "model.onnx"), load_external_data=False)
    for node in model.graph.node:
        for attribute in node.attribute:
            tensors = [*attribute.g.initializer, *([attribute.t] if attribute.HasField("t") else [])]
            for tensor in tensors:
                for entry in tensor.external_data:
                    if entry.key == "location":
                        entry.value = "README.md"
    onnx.save(model, str(kernel / "model.onnx"))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _onnx_zip_polyglot(kernel: Path, marker: Path) -> None:
    """model.onnx with an unknown length-delimited field (number 99) holding a zip whose data.pkl
    calls posix.system: onnx.load keeps it as an unknown field, zipfile/torch.load find the zip
    from its end record."""
    _copy(ONNX_BASE, kernel)
    inner = hc.zip_bytes({"archive/data.pkl": posix_system(marker)})
    model = (kernel / "model.onnx").read_bytes()
    (kernel / "model.onnx").write_bytes(model + _varint(99 << 3 | 2) + _varint(len(inner)) + inner)


def _external_data_is(payload: Callable[[Path], bytes]) -> Build:
    """The If-subgraph model whose external data file is exactly one tensor holding ``payload``."""
    def build(kernel: Path, marker: Path) -> None:
        import onnx

        from tests.security.test_gate_properties import _if_subgraph_kernel

        _if_subgraph_kernel(kernel)
        data = payload(marker)
        data += b"\x00" * (-len(data) % 4)
        model = onnx.load(str(kernel / "model.onnx"), load_external_data=False)
        then = model.graph.node[1].attribute[0].g
        tensor = then.initializer[0]
        del tensor.dims[:]
        tensor.dims.extend([len(data) // 4])
        for entry in tensor.external_data:
            if entry.key == "offset":
                entry.value = "0"
            elif entry.key == "length":
                entry.value = str(len(data))
        onnx.save(model, str(kernel / "model.onnx"))
        (kernel / "weights.bin").write_bytes(data)
        other = [t for t in (*model.graph.node[1].attribute[1].g.initializer,) if t.external_data]
        assert not other or all(e.value == "weights.bin" for t in other for e in t.external_data
                                if e.key == "location")
    return build


ALL = frozenset({"KS402", "KS403", "KS404", "KS405", "KS406", "KS407", "KS408", "KS409", "KS410", "KS411"})
HOOK = ("hook", "{check}", "METADATA")


def _hook(check: str) -> tuple[str, ...]:
    return tuple(part.format(check=check) for part in HOOK)


ATTACKS: list[Attack] = [
    # resources: the restricted unpickler and the diagnosis of refused files
    Attack("data-pkl-global-2m", "data.pkl names collections.OrderedDict 2,000,000 times",
           _torchscript(lambda p, m: m.__setitem__(p + "data.pkl", repeated_global(2_000_000))),
           ("model.pt!mlp/data.pkl",), frozenset({"KS410"})),
    Attack("weights-global-2m", "weights.dat: 2,000,000 allowed globals, then posix.system",
           _file("weights.dat", lambda m: repeated_global(2_000_000, posix_system(m)[2:])),
           ("weights.dat",), frozenset({"KS402"})),
    Attack("data-pkl-500k-classes", "data.pkl names 500,000 TorchScript classes",
           _torchscript(lambda p, m: m.__setitem__(p + "data.pkl", many_torch_classes(500_000))),
           ("model.pt!mlp/data.pkl",), frozenset({"KS406", "KS410"})),
    Attack("slow-diagnosis-30-files", "30 refused files, each 600,000 globals then posix.system",
           lambda k, m: _slow_to_diagnose(k, m, 30),
           ("w0.dat", "w29.dat"), frozenset({"KS402"})),
    Attack("data-pkl-200k-storages", "data.pkl references 200,000 storages the archive lacks",
           _torchscript(lambda p, m: m.__setitem__(p + "data.pkl", missing_storages(200_000))),
           ("model.pt!mlp/data.pkl",), frozenset({"KS408", "KS410"})),
    Attack("archive-50k-members", "model.pt with 50,000 stray one-byte members",
           _torchscript(lambda p, m: m.update({f"{p}extra/{i}": b"x" for i in range(50_000)})),
           ("model.pt!mlp/extra/0",), frozenset({"KS408"})),
    Attack("archive-20-slow-debug-pkls", "twenty .debug_pkl members, each 400,000 globals",
           _torchscript(lambda p, m: m.update(
               {**{f"{p}code/__torch__/m{i}.py": b"x = 1\n" for i in range(20)},
                **{f"{p}code/__torch__/m{i}.py.debug_pkl": repeated_global(400_000) for i in range(20)}})),
           tuple(f"model.pt!mlp/code/__torch__/m{i}.py.debug_pkl" for i in range(20)), frozenset({"KS410"})),
    # leaks: hard links
    Attack("hardlink-requirements", "requirements.txt hard-linked to a passwd-like file outside",
           _hard_link("requirements.txt", PASSWD_LIKE), ("requirements.txt",), frozenset({"KS411"}),
           secret="bash-kernelshim-outside"),
    Attack("hardlink-metadata", "model_metadata.json hard-linked to a JSON secret outside",
           _hard_link("model_metadata.json", SECRET_JSON), ("model_metadata.json",),
           frozenset({"KS411"}), secret="outside-secret-kernelshim"),
    Attack("hardlink-readme", "README.md hard-linked to a file outside",
           _hard_link("README.md", PASSWD_LIKE), ("README.md",), frozenset({"KS411"}),
           secret="bash-kernelshim-outside"),
    Attack("hardlink-sample", "samples/example.json hard-linked to a JSON secret outside",
           _hard_link("samples/example.json", SECRET_JSON), ("samples/example.json",),
           frozenset({"KS411"}), secret="outside-secret-kernelshim"),
    Attack("hardlink-requirements-dependencies-hook", "the same, through shim hook dependencies",
           _hard_link("requirements.txt", PASSWD_LIKE), ("requirements.txt",), frozenset({"KS501"}),
           command=_hook("dependencies"), secret="bash-kernelshim-outside"),
    # crashes and strict content
    Attack("metadata-5000-digit-integer", "a metadata integer of 5,000 digits (was exit 70)",
           _file("model_metadata.json", lambda m: b'{"name": 1' + b"0" * 5000 + b"}"),
           ("model_metadata.json",), frozenset({"KS003"})),
    Attack("sample-utf16", "a golden sample in UTF-16", _file("samples/example.json",
           lambda m: (ONNX_BASE / "samples" / "example.json").read_text().encode("utf-16")),
           ("samples/example.json",), frozenset({"KS302"})),
    Attack("sample-bom", "a golden sample with a UTF-8 byte-order mark", _file("samples/example.json",
           lambda m: b"\xef\xbb\xbf" + (ONNX_BASE / "samples" / "example.json").read_bytes()),
           ("samples/example.json",), frozenset({"KS302"})),
    Attack("sample-lone-surrogate", "a golden sample holding a lone surrogate escape",
           _file("samples/example.json", lambda m: b'{"request": "\\ud800"}'),
           ("samples/example.json",), frozenset({"KS302"})),
    Attack("external-data-in-readme", "ONNX external data read from README.md (a file with a role)",
           _external_data_in_readme, ("model.onnx",), frozenset({"KS105"})),
    Attack("onnx-zip-polyglot", "model.onnx that is also a zip holding a posix.system data.pkl",
           _onnx_zip_polyglot, ("model.onnx",), frozenset({"KS407"})),
    Attack("external-data-pickle-tensor", "an external data file whose one tensor is a posix.system pickle",
           _external_data_is(posix_system), ("weights.bin",), frozenset({"KS407"})),
    Attack("external-data-zip-tensor", "an external data file whose one tensor is a zip archive",
           _external_data_is(lambda m: hc.zip_bytes({"x/data.pkl": posix_system(m)})), ("weights.bin",),
           frozenset({"KS407"})),
    Attack("foreign-framework-pickle", "framework sklearn, model.pkl is a posix.system pickle",
           _foreign_framework, ("model.pkl",), frozenset({"KS402", "KS403", "KS407"})),
    Attack("foreign-framework-pickle-no-pickle-hook", "the same, through shim hook no-pickle",
           _foreign_framework, ("model.pkl",), frozenset({"KS403"}), command=_hook("no-pickle")),
    Attack("metadata-pickle-no-pickle-hook", "model_metadata.json is a posix.system pickle",
           _file("model_metadata.json", posix_system), ("model_metadata.json",), frozenset({"KS403"}),
           command=_hook("no-pickle")),
    Attack("sparse-7g-model", "a sparse 7 GiB model.onnx (was read into memory whole)",
           _sparse("model.onnx", 7 * 1024**3), ("model.onnx",), frozenset({"KS103"})),
    # hooks: the result cache walked and hashed the kernel before any check
    Attack("hook-sparse-50g", "a sparse 50 GiB README.md through shim hook validate",
           _sparse("README.md", 50 * 1024**3), ("README.md", "."), frozenset({"KS401", "KS409"}),
           command=_hook("validate")),
    Attack("hook-100k-files", "100,000 empty files through shim hook no-pickle", _many_files(100_000),
           (".", "f0"), frozenset({"KS409", "KS402"}), command=_hook("no-pickle"), heavy=True),
    Attack("hook-1500-folders", "1,500 nested folders through shim hook validate", _deep_folders(1500),
           (".", "d"), frozenset({"KS409", "KS402"}), command=_hook("validate")),
    Attack("hook-fifo-metadata", "model_metadata.json is a FIFO, through shim hook validate",
           _fifo_metadata, ("model_metadata.json",), frozenset({"KS002", "KS405"}),
           command=_hook("validate")),
]

