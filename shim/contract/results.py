"""The outcome of validating one kernel.

A light module (no numpy, onnx or runtimes) so reports can be rendered from cached results
without importing the validator's heavy dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shim.findings import Finding

if TYPE_CHECKING:
    from shim.spec.kernel import Kernel


@dataclass(frozen=True)
class MemoryPeak:
    """What one replica needed to run a batch of ``batch_size`` rows: the child process's peak
    resident set (the interpreter, the runtime libraries, the model and the batch: what a pod's
    memory limit must hold) and, on a GPU, the device memory the framework allocated at its peak."""

    rss_bytes: int
    device_bytes: int | None
    batch_size: int

    def to_json(self) -> dict[str, int | None]:
        """The JSON report's ``memory`` object; ``shim tf vars`` and the plan gate read these names."""
        return {"peak_rss_bytes": self.rss_bytes, "device_peak_bytes": self.device_bytes,
                "batch_size": self.batch_size}


@dataclass
class ValidationReport:
    kernel_dir: Path
    findings: list[Finding] = field(default_factory=list)
    kernel: Kernel | None = None
    samples_run: int = 0
    #: True when the hooks served this report from their result cache instead of re-running checks.
    cached: bool = False

    #: Peak memory of one batch at max_batch_size (``shim validate``'s model run), or None.
    memory_peak: MemoryPeak | None = None

    @property
    def ok(self) -> bool:
        """No error: warnings alone do not fail a kernel (``passes(strict=True)`` counts them)."""
        return self.passes()

    def passes(self, strict: bool = False) -> bool:
        return not any(f.counts(strict) for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if not f.is_warning]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.is_warning]
