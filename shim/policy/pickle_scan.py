"""Find the globals a pickle would import, without unpickling it.

Unpickling is code execution: any GLOBAL/STACK_GLOBAL/INST opcode imports and may call an
arbitrary callable. The scan walks the opcode stream with the standard library's
``pickletools.genops`` (a disassembler, it executes nothing) and records every global a load
would resolve. Files may hold several pickles back to back; all are read.
"""

from __future__ import annotations

import io
import pickletools
import re
from dataclasses import dataclass, field

_STRING_OPS = {
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
    "SHORT_BINSTRING", "BINSTRING", "STRING", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8",
}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
PICKLE_PROTOCOL_BYTE = 0x80


@dataclass
class PickleScan:
    globals: list[str] = field(default_factory=list)
    error: str | None = None


def looks_like_pickle(head: bytes) -> bool:
    """Protocol 2+ pickles start with PROTO (0x80) and a protocol number 2..5."""
    return len(head) >= 2 and head[0] == PICKLE_PROTOCOL_BYTE and 2 <= head[1] <= 5


def scan_pickle_bytes(data: bytes) -> PickleScan:
    """Every ``module.name`` a load of ``data`` would import, in order of appearance."""
    result = PickleScan()
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        strings: list[str] = []
        memo: dict[int, str] = {}
        last_value: str | None = None
        try:
            for opcode, arg, _pos in pickletools.genops(stream):
                name = opcode.name
                if name in _STRING_OPS:
                    last_value = arg.decode("latin-1") if isinstance(arg, bytes) else str(arg)
                    strings.append(last_value)
                    continue
                if name in _MEMO_PUT and last_value is not None:
                    memo[arg] = last_value
                elif name == "MEMOIZE" and last_value is not None:
                    memo[len(memo)] = last_value
                elif name in _MEMO_GET and arg in memo:
                    strings.append(memo[arg])
                    last_value = memo[arg]
                    continue
                if name in ("GLOBAL", "INST"):
                    module, _, qualname = str(arg).partition(" ")
                    result.globals.append(f"{module}.{qualname}")
                elif name == "STACK_GLOBAL":
                    if len(strings) >= 2:
                        result.globals.append(f"{strings[-2]}.{strings[-1]}")
                    else:
                        result.globals.append("<unresolved>.<STACK_GLOBAL with computed name>")
                last_value = None
        except Exception as exc:  # pickletools raises ValueError and others on malformed streams
            result.error = f"malformed pickle at byte {stream.tell()}: {exc}"
            return result
        # skip padding between concatenated pickles
        rest = data[stream.tell():]
        if not rest.strip(b"\x00\n\r\t "):
            break
    return result


_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
#: Largest headerless file sniffed for a protocol 0/1 pickle (larger ones are tensor blobs).
MAX_SNIFF_BYTES = 16 * 1024 * 1024


def is_headerless_pickle(data: bytes) -> bool:
    """Protocol 0/1 pickles have no PROTO header, so a renamed one (``vocab.dat``) passes a
    header check yet ``pickle.load`` runs it. The file counts as a pickle if its start
    disassembles to a complete pickle (up to STOP; trailing bytes are ignored, as ``pickle.load``
    ignores them) that imports a global with a real dotted Python name. Random binary data
    practically never satisfies both, so tensor blobs and text files are not misreported."""
    stream = io.BytesIO(data)
    try:
        for _ in pickletools.genops(stream):
            pass
    except Exception:  # not a pickle: the disassembler stops at the first invalid opcode
        return False
    scan = scan_pickle_bytes(data[: stream.tell()])
    return any(_DOTTED_NAME.match(name) for name in scan.globals)
