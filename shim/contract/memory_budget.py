"""The memory budget: one batch of ``max_batch_size`` rows, its peak memory, and the contract's
``resources.memory`` against it.

Ops size pods from ``resources.memory``; nothing checked it, so a kernel declaring 512Mi that needs
3Gi at its largest batch was found by the OOM killer. The validator's sandboxed sample run
(``shim.contract.model_run``) therefore also runs one batch as large as the server may merge
(``batching.max_batch_size``; without batching, the golden samples' own batch), built by repeating
the rows of the first golden sample, and reads the child process's peak resident set
(``VmHWM`` from /proc/self/status, the kernel's high-water mark of the child's address space, so
a short spike inside the runtime counts too). That figure includes the Python interpreter and the
runtime libraries (onnxruntime, torch) besides the model and the batch, which is exactly what a
serving replica holds, so comparing it with the pod limit is fair; the policy's
``memory_headroom`` (default 1.25) covers what the sample run does not do (request decoding,
concurrent requests, allocator fragmentation). On a GPU, the device peak is torch's
``max_memory_reserved``; onnxruntime's CUDA provider exposes no peak, so it is reported as
unknown (None) there.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import numpy as np

from shim.contract.samples import MAX_SAMPLE_BYTES, sample_files
from shim.findings import Finding
from shim.kernelfs import KernelFileError, read_regular
from shim.protocol.codec import Limits, ProtocolError, decode_request
from shim.spec.kernel import Kernel
from shim.spec.layout import METADATA_FILE
from shim.spec.quantity import format_bytes, memory_bytes
from shim.strict_json import StrictJSONError, loads_strict

DEFAULT_HEADROOM = 1.25


def _peak_rss_bytes() -> int:
    """This process's peak resident set since it started its program.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this address space. Not
    ``ru_maxrss``: Linux carries that over ``fork``/``vfork`` and ``execve``, so a child spawned by
    a parent holding 400 MiB (a test process that imported torch) would report at least 400 MiB
    whatever the model needs.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # "VmHWM:   123456 kB"
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # macOS: bytes; elsewhere KiB
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _device_peak_bytes(device: str) -> int | None:
    torch = sys.modules.get("torch")
    if device == "cpu" or torch is None:
        return None
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return int(torch.cuda.max_memory_reserved())
    except Exception:
        return None
    return None


def repeat_rows(arrays: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Every input grown (or cut) to ``batch_size`` rows along the first axis by repeating its rows."""
    grown = {}
    for name, array in arrays.items():
        rows = array.shape[0]
        grown[name] = np.take(array, np.arange(batch_size) % rows, axis=0) if rows else array
    return grown


def measure_peak(kernel: Kernel, runtime: Any, device: str) -> tuple[list[Finding], dict[str, Any] | None]:
    """Run one batch of ``max_batch_size`` (or the golden samples' own batch) through ``runtime``
    in this (sandboxed) process and return its peak memory, or a finding when the batch fails."""
    files = sample_files(kernel)
    if not files:
        return [], None
    specs = {t.name: t for t in kernel.inputs}
    max_batch = kernel.batching.max_batch_size
    try:  # the golden-sample run has read, schema-checked and run this sample already
        request = loads_strict(read_regular(files[0], MAX_SAMPLE_BYTES))["request"]
        decoded = decode_request(request, specs, [t.name for t in kernel.outputs], None,
                                 Limits(max_batch_size=max_batch))
    except (KernelFileError, StrictJSONError, ProtocolError, KeyError, TypeError):
        return [], None  # reported by the golden-sample run
    arrays = dict(decoded.inputs)
    batched = max_batch > 0 and all(a.ndim >= 1 and a.shape[0] >= 1 for a in arrays.values())
    if batched:
        arrays = repeat_rows(arrays, max_batch)
        batch_size = max_batch
        try:
            runtime.predict(arrays)
        except Exception as exc:  # MemoryError propagates: the sandbox reports the budget
            return [Finding(
                "KS842", str(files[0]), "$.request",
                f"a batch of {max_batch} rows (the first golden sample's rows repeated) failed: "
                f"{type(exc).__name__}: {str(exc)[:300]}",
                expected=f"a model that runs batches of up to batching.max_batch_size ({max_batch}) rows, "
                "as the server merges requests into them",
                fix="lower batching.max_batch_size to what the model handles, or export the model with a "
                "dynamic batch dimension",
            )], None
    else:
        first = next(iter(arrays.values()), None)
        batch_size = int(first.shape[0]) if first is not None and first.ndim else 1
    return [], {"peak_rss_bytes": _peak_rss_bytes(), "device_peak_bytes": _device_peak_bytes(device),
                "batch_size": batch_size}


def check_memory_budget(kernel: Kernel, peak_rss_bytes: int, batch_size: int,
                        headroom: float = DEFAULT_HEADROOM) -> list[Finding]:
    """``resources.memory`` against the measured peak times the policy's headroom."""
    declared = (kernel.metadata.get("resources") or {}).get("memory")
    if not declared:
        return []
    needed = int(peak_rss_bytes * headroom)
    if memory_bytes(declared) >= needed:
        return []
    return [Finding(
        "KS841", str(kernel.root / METADATA_FILE), "$.resources.memory",
        f"declares {declared} but running a batch of {batch_size} peaked at "
        f"{peak_rss_bytes / 2**20:.0f} MiB ({peak_rss_bytes:,} bytes resident)",
        expected=f"at least {format_bytes(needed)}: the measured peak {format_bytes(peak_rss_bytes)} times "
        f"the policy's memory_headroom {headroom:g}",
        fix=f"set resources.memory to {format_bytes(needed)} or more (measured peak "
        f"{format_bytes(peak_rss_bytes)} at batch {batch_size}), or lower batching.max_batch_size",
    )]
