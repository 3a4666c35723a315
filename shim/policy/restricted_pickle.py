"""Parse a pickle with CPython's own unpickler, resolving only allowed globals to inert stand-ins.

A disassembler (``pickletools``) and a pattern list over its output were the old design: the
scanner and the loader were two parsers, and every place they disagreed (frames, memo indices,
strings pushed and popped around STACK_GLOBAL, dotted names through an allowed module) was a
bypass. Here the parse *is* the loader's parse: ``pickle.Unpickler`` (the C implementation that
``pickle.load`` uses) runs the stream, and the only two hooks through which a pickle reaches the
outside world are replaced:

- ``find_class(module, name)`` receives each global exactly as the unpickler will resolve it; an
  exact ``(module, name)`` pair on the allow-list yields an inert stand-in (a Python object of this
  module that records its arguments), anything else stops the parse and is reported under the name
  the unpickler saw. No import happens and nothing from the pickle is ever called.
- ``persistent_load(pid)`` returns a placeholder that records which storage the pickle references.

Stand-ins record what a tensor claims (storage, offset, sizes, strides) so the archive check can
prove every storage is the size the pickle says and every tensor lies inside its storage.
Bounded: the stream is at most ``max_bytes`` long (every opcode is at least one byte, so this also
bounds the opcode count), stand-in calls are counted, and the caller runs the whole check in a
child process with CPU-time, memory and wall-clock limits (``shim.sandbox``).
"""

from __future__ import annotations

import io
import pickle
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Element size of each storage type the TorchScript pickler writes (``torch.<Name>Storage``).
STORAGE_ITEMSIZE: dict[str, int] = {
    "ByteStorage": 1, "CharStorage": 1, "ShortStorage": 2, "IntStorage": 4, "LongStorage": 8,
    "HalfStorage": 2, "FloatStorage": 4, "DoubleStorage": 8, "ComplexHalfStorage": 4,
    "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16, "BoolStorage": 1, "BFloat16Storage": 2,
    "QInt8Storage": 1, "QUInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1, "Float8_e5m2Storage": 1, "Float8_e4m3fnStorage": 1,
    "Float8_e5m2fnuzStorage": 1, "Float8_e4m3fnuzStorage": 1, "UInt16Storage": 2,
    "UInt32Storage": 4, "UInt64Storage": 8,
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_STORAGE_KEY = re.compile(r"[0-9]{1,12}\Z")


class PickleRejected(Exception):
    """The pickle references something it may not; ``global_name`` is what the unpickler saw."""

    def __init__(self, message: str, global_name: str | None = None, over_budget: bool = False) -> None:
        super().__init__(message)
        self.global_name = global_name
        self.over_budget = over_budget


@dataclass(frozen=True)
class StorageRef:
    """A storage the pickle references through ``persistent_load``."""

    key: str
    type_name: str
    location: str
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * STORAGE_ITEMSIZE.get(self.type_name, 1)


@dataclass
class PickleReport:
    """What a restricted parse found. ``rejected`` is set when the parse stopped on a global."""

    #: every global the parse met, in order, each once (a dict used as an ordered set)
    globals: dict[str, None] = field(default_factory=dict)
    storages: dict[str, StorageRef] = field(default_factory=dict)
    #: (storage key, last element index + 1) for every tensor view, to check it fits its storage
    extents: list[tuple[str, int]] = field(default_factory=list)
    torch_classes: set[str] = field(default_factory=set)
    rejected: str | None = None
    error: str | None = None
    #: bytes after the first pickle's STOP opcode
    trailing: int = 0
    #: record-only mode: the first global the stream calls (REDUCE, NEWOBJ, BUILD...) or completes with
    called: str | None = None
    #: the parse was stopped by the deadline or the memory limit (``error`` says which)
    over_budget: bool = False


@dataclass(frozen=True)
class Rules:
    """What a pickle in this place may reference."""

    allowed_globals: frozenset[str] = frozenset()
    #: TorchScript class types (``__torch__.*``), resolved by torch's type resolver, never by Python
    torch_classes: bool = False
    storages: bool = False
    max_bytes: int = 64 * 1024 * 1024
    max_calls: int = 10_000_000
    #: Diagnosis of a refused file: every global resolves to a recording stand-in instead of stopping
    #: the parse, so the report says whether the stream would really *call* one (see ``would_call``).
    record_only: bool = False
    #: Distinct TorchScript class names one pickle may use (each is a stand-in type).
    max_torch_classes: int = 10_000
    #: ``time.monotonic()`` after which the parse stops with an error (None: no deadline). Checked at
    #: every callback, so a stream of millions of globals cannot outlast the scan's budget.
    deadline: float | None = None


class _Inert:
    """Base of every stand-in: records state, has no behaviour a pickle could reach."""

    __slots__ = ("args", "state")

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _StorageType:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _StoragePlaceholder:
    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


class _Unpickler(pickle.Unpickler):
    def __init__(self, stream: io.BytesIO, rules: Rules, report: PickleReport) -> None:
        super().__init__(stream)
        self.rules = rules
        self.report = report
        self.calls = 0
        self.classes: dict[str, type] = {}

    def _count(self) -> None:
        self.calls += 1
        if self.calls > self.rules.max_calls:
            raise PickleRejected(f"builds more than {self.rules.max_calls:,} objects")
        deadline = self.rules.deadline
        if deadline is not None and not self.calls % 1024 and time.monotonic() > deadline:
            raise PickleRejected("takes longer to parse than the scan's time budget allows", over_budget=True)

    def find_class(self, module: str, name: str) -> Any:
        self._count()
        full = f"{module}.{name}"
        self.report.globals.setdefault(full, None)  # ordered set: a name repeated 1M times is one entry
        if full in self.rules.allowed_globals:
            return self._stand_in(module, name)
        if self.rules.record_only:
            return self._recorder(full)
        if self.rules.torch_classes and _is_torch_class(module, name):
            self.report.torch_classes.add(full)
            cls = self.classes.get(full)
            if cls is None:
                if len(self.classes) >= self.rules.max_torch_classes:
                    limit = self.rules.max_torch_classes
                    raise PickleRejected(f"uses more than {limit:,} TorchScript classes")
                cls = self.classes[full] = type("ScriptObject", (_Inert,), {"__slots__": ()})
            return cls
        raise PickleRejected(f"references the global {full}", full)

    def _recorder(self, full: str) -> Any:
        report = self.report

        class Recorder(_Inert):
            __slots__ = ()

            def __new__(cls, *args: Any, **kwargs: Any) -> Any:
                report.called = report.called or full
                return super().__new__(cls)

        return Recorder

    def _stand_in(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_ITEMSIZE:
            return _StorageType(name)
        if (module, name) in {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_qtensor")}:
            return self._rebuild_tensor
        return self._generic

    def _generic(self, *args: Any, **kwargs: Any) -> _Inert:
        self._count()
        return _Inert(*args)

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> _Inert:
        self._count()
        if not isinstance(storage, _StoragePlaceholder):
            raise PickleRejected("rebuilds a tensor from something that is not a storage")
        if not (isinstance(offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) and all(isinstance(v, int) for v in (*size, *stride))):
            raise PickleRejected("rebuilds a tensor with malformed offset, sizes or strides")
        if any(v < 0 for v in (offset, *size, *stride)):
            raise PickleRejected("rebuilds a tensor with a negative offset, size or stride")
        if 0 not in size:
            end = offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True)) + 1
            self.report.extents.append((storage.key, end))
        return _Inert(storage, offset, size, stride, *rest)

    def persistent_load(self, pid: Any) -> Any:
        self._count()
        if not self.rules.storages:
            raise PickleRejected("references external objects (persistent ids), which are not allowed here")
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and isinstance(pid[3], str) and isinstance(pid[4], int) and pid[4] >= 0):
            raise PickleRejected("has a persistent id that is not a tensor storage reference")
        _, storage_type, key, location, numel = pid
        if not _STORAGE_KEY.match(key):
            raise PickleRejected(f"references storage key {key[:40]!r}; torch writes decimal keys")
        ref = StorageRef(key, storage_type.name, location[:64], numel)
        previous = self.report.storages.setdefault(key, ref)
        if previous != ref:
            raise PickleRejected(f"references storage {key} twice with different types or sizes")
        return _StoragePlaceholder(key)


def _is_torch_class(module: str, name: str) -> bool:
    parts = module.split(".")
    return parts[0] == "__torch__" and all(_IDENTIFIER.match(p) for p in (*parts, name))


class _WholeBuffer:
    """A file whose first ``read`` hands the unpickler all remaining bytes.

    The C unpickler parses ``pickle.loads(data)`` from one in-memory buffer, but ``pickle.load(file)``
    from reads that can drop a partial item at a FRAME boundary: the same bytes parse differently
    (a FRAME shorter than its content is the known case). ``pickle.loads`` accepts no
    ``find_class`` hook, so this reader reproduces its single-buffer parse through the file
    interface: after the first read the unpickler never reads again.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def read(self, _size: int = -1) -> bytes:
        chunk = self.data[self.position:]
        self.position = len(self.data)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read()
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def readline(self) -> bytes:
        return self.read()


def _parse(stream: Any, rules: Rules) -> PickleReport:
    report = PickleReport()
    try:
        _Unpickler(stream, rules, report).load()
    except PickleRejected as exc:
        report.rejected = exc.global_name
        report.error = None if exc.global_name else str(exc)
        report.over_budget = exc.over_budget
    except MemoryError:
        report.error = "needs more memory than the scan allows"
        report.over_budget = True
    except Exception as exc:  # the unpickler's own errors on malformed streams: any type
        report.error = f"is not a well-formed pickle ({type(exc).__name__}: {str(exc)[:120]})"
    return report


def inspect_pickle(data: bytes, rules: Rules) -> PickleReport:
    """Run one pickle through the restricted unpickler as both loaders parse it: from one buffer
    (``pickle.loads``) and from a file (``pickle.load``). A global either parse meets is reported;
    a stream the two parse differently is malformed. Never raises for malformed input."""
    if len(data) > rules.max_bytes:
        return PickleReport(error=f"is {len(data):,} bytes; pickles here may be at most {rules.max_bytes:,}")
    as_bytes = _parse(_WholeBuffer(data), rules)
    stream = io.BytesIO(data)
    as_file = _parse(stream, rules)
    report = as_bytes
    report.globals.update(as_file.globals)
    report.rejected = report.rejected or as_file.rejected
    report.called = report.called or as_file.called
    report.torch_classes |= as_file.torch_classes
    if as_file.over_budget and not report.over_budget and not report.rejected:
        report.error, report.over_budget = as_file.error, True
    if report.rejected:
        report.error = None
    elif bool(report.error) != bool(as_file.error) and not report.over_budget:
        report.error = "parses differently from a file than from memory (a FRAME that lies about its length?)"
    report.trailing = len(data) - stream.tell() if not as_file.error else 0
    return report


def first_global(
    data: bytes, max_pickles: int = 64, max_bytes: int = 256 * 1024 * 1024, deadline: float | None = None
) -> str | None:
    """The first global a pickle in ``data`` would call, or None: what a refused file really is.

    Back-to-back pickles are read as a loop of ``pickle.load`` would. A global counts when the
    stream calls it (REDUCE, NEWOBJ, BUILD...) even if the stream breaks right after, or when a
    pickle naming it parses to its end; a text file that happens to start like a GLOBAL opcode
    ("c" at the start of a line) and then breaks does not count, so prose is never reported."""
    rules = Rules(max_bytes=max_bytes, record_only=True, deadline=deadline)
    offset = 0
    for _ in range(max_pickles):
        if offset >= len(data):
            return None
        report = inspect_pickle(data[offset:], rules)
        if report.called:
            return report.called
        if report.error or report.trailing <= 0:
            return next(iter(report.globals), None) if not report.error else None
        offset = len(data) - report.trailing
    return None


def classify_global(name: str, dangerous: Callable[[str], bool]) -> str:
    """KS403 for a global known to run code, else KS404 (not on the allow-list)."""
    return "KS403" if dangerous(name) else "KS404"


def rules_for(
    policy: Mapping[str, Any], *, storages: bool, torch_classes: bool, not_after: float | None = None
) -> Rules:
    """The rules for one pickle of a model archive: its parse must end within ``max_pickle_seconds``
    and not after ``not_after`` (the archive's budget for all its pickles together)."""
    scan = policy.get("scan") or {}
    deadline = time.monotonic() + float(scan.get("max_pickle_seconds", 1.5))
    return Rules(
        deadline=deadline if not_after is None else min(deadline, not_after),
        allowed_globals=frozenset(policy.get("torchscript_pickle_globals") or ()),
        torch_classes=torch_classes,
        storages=storages,
        max_bytes=int(scan.get("max_pickle_bytes", Rules.max_bytes)),
        max_calls=int(scan.get("max_pickle_objects", Rules.max_calls)),
    )
