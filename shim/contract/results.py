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


@dataclass
class ValidationReport:
    kernel_dir: Path
    findings: list[Finding] = field(default_factory=list)
    kernel: Kernel | None = None
    samples_run: int = 0
    #: True when the hooks served this report from their result cache instead of re-running checks.
    cached: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings
