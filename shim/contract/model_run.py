"""Load the model, check its signature and run the golden samples, in a sandboxed child process.

This is the only part of validation that executes anything from the kernel: the model's graph in
its runtime and the handler's Python source. ``shim validate`` and the pre-commit hook run it in a
child process (``shim.sandbox``) with a scrubbed environment (no inherited tokens or CI secrets),
a private temporary working directory and the policy's CPU, memory and wall-clock budget, so a
handler that reads ``os.environ``, writes files, loops or allocates without bound harms nothing
and becomes a finding. The server runs kernels in its own container and uses the same functions
in-process (``shim.server.model_service``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shim.contract.kernel import read_kernel
from shim.contract.memory_budget import measure_peak
from shim.contract.model_check import check_torchscript_signature
from shim.contract.samples import load_samples, run_samples
from shim.findings import Finding
from shim.runtimes.base import Runtime, RuntimeLoadError, load_runtime
from shim.runtimes.handler import HandlerLoadError, handler_file, with_handler
from shim.spec.kernel import Kernel


class ModelRunFailure(Exception):
    """The model or its handler could not be made ready; ``findings`` say why."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__("; ".join(f.render().replace("\n", " ") for f in findings))
        self.findings = findings


def load_as_served(kernel: Kernel, device: str, threads: int | None = None, handler: bool = True,
                   progress: Callable[[str], None] = lambda _label: None,
                   options: Mapping[str, Any] | None = None) -> Runtime:
    """The kernel's runtime as ``shim serve`` runs it: model loaded, signature checked, handler
    around it (unless ``handler`` is False: ``--skip-samples`` never imports it). The one copy of
    this sequence, used by the validator's sandboxed child and by the server's model service."""
    progress(str(kernel.model_path))
    try:
        runtime = load_runtime(kernel, device=device, threads=threads, options=options)
    except RuntimeLoadError as exc:
        code = "KS104" if "not installed" in str(exc) else "KS103"
        raise ModelRunFailure([Finding(
            code, str(kernel.model_path), "", str(exc)[:600],
            expected="a model the runtime can load",
            fix="pip install 'kernelshim[torch]'" if code == "KS104" else "re-export the model",
        )]) from None
    findings = (check_torchscript_signature(kernel, getattr(runtime, "module", None))
                if kernel.framework == "torchscript" else [])
    if findings:
        runtime.close()
        raise ModelRunFailure(findings)
    if not handler:
        return runtime
    path = handler_file(kernel)
    if path is not None:
        progress(str(path))
    try:
        return with_handler(runtime, kernel)
    except HandlerLoadError as exc:
        runtime.close()
        raise ModelRunFailure([Finding(
            "KS008", str(path), "", str(exc)[:600],
            expected="a handler module that imports cleanly",
            fix="import only packages the runtime image or the kernel's requirements.txt provide, and "
            "do no work at import time that can fail",
        )]) from None


def golden_sample_findings(
    kernel: Kernel, runtime: Runtime, progress: Callable[[str], None] = lambda _label: None
) -> tuple[list[Finding], int]:
    """Every golden sample through ``runtime``: the findings, and how many samples there were."""
    samples, findings = load_samples(kernel)
    for sample in samples:
        progress(str(sample.path))
    return findings + run_samples(kernel, runtime, samples), len(samples)


def check_model_run(kernel: Kernel, device: str, run_golden_samples: bool,
                    progress: Callable[[str], None] = lambda _label: None,
                    memory: dict[str, Any] | None = None) -> tuple[list[Finding], int]:
    """Findings of loading and running the kernel's model, and how many samples ran. When the
    samples pass and ``memory`` is given, one batch of max_batch_size also runs and ``memory`` gets
    its peak (``shim.contract.memory_budget``)."""
    try:
        runtime = load_as_served(kernel, device, handler=run_golden_samples, progress=progress)
    except ModelRunFailure as exc:
        return exc.findings, 0
    try:
        if not run_golden_samples:
            return [], 0
        findings, samples_run = golden_sample_findings(kernel, runtime, progress)
        if memory is not None and not findings:
            progress(f"{kernel.root} (a batch of max_batch_size)")
            batch_findings, peak = measure_peak(kernel, runtime, device)
            findings += batch_findings
            memory.update(peak or {})
        return findings, samples_run
    finally:
        runtime.close()


def run_in_child(payload: dict[str, Any], progress: Callable[[str], None]) -> dict[str, Any]:
    """``check_model_run`` as the sandboxed child runs it."""
    kernel = read_kernel(Path(payload["root"]))
    memory: dict[str, Any] = {}
    findings, samples_run = check_model_run(
        kernel, payload["device"], payload["run_golden_samples"], progress, memory
    )
    return {"findings": [f.to_dict() for f in findings], "samples_run": samples_run,
            "memory": memory or None}
