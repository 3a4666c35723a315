"""The kernel validator: every check, all findings at once.

Order matters for safety, not for reporting: the artifact scan (pickles, links) runs before any
loader touches a file, and a model whose archive holds a dangerous pickle is never loaded.
Findings from independent checks are all reported in one run so a data scientist fixes
everything in one go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shim.contract.handler_check import check_handler
from shim.contract.kernel import Kernel, kernel_from_metadata, read_metadata
from shim.contract.model_check import (
    check_model_file,
    check_torchscript_signature,
    compare_onnx_signature,
    load_onnx,
)
from shim.contract.results import ValidationReport
from shim.contract.samples import load_samples, run_samples
from shim.findings import Finding
from shim.policy.artifacts import check_artifacts
from shim.policy.dependencies import check_requirements
from shim.policy.loader import Policies, load_policies
from shim.runtimes.base import Runtime, RuntimeLoadError, load_runtime
from shim.runtimes.handler import HandlerLoadError, handler_file, with_handler

__all__ = ["ValidationReport", "validate_kernel", "validate_many"]


def _model_blocked(findings: list[Finding], model_path: Path) -> bool:
    """A model file with dangerous or unknown pickle content must never reach a loader."""
    model = str(model_path)
    return any(
        f.code in {"KS403", "KS404", "KS405", "KS406"} and (f.file == model or f.file.startswith(model + "!"))
        for f in findings
    )


def validate_kernel(
    kernel_dir: Path | str,
    *,
    policies: Policies | None = None,
    device: str = "cpu",
    run_golden_samples: bool = True,
    keep_runtime: bool = False,
    load_model: bool = True,
) -> ValidationReport:
    """Run every check on one kernel directory.

    With ``keep_runtime`` the loaded runtime stays on the report, already warmed up by the golden
    samples, so the caller does not load the model a second time. With ``load_model=False`` only
    the static checks run (files, policies, schema, ONNX graph): the server uses that before it
    starts, then loads the model and runs the samples while already answering health probes.
    """
    root = Path(kernel_dir)
    report = ValidationReport(root)
    policies = policies or load_policies()
    metadata, findings = read_metadata(root)
    report.findings += findings
    if not root.is_dir():
        return report

    model_file = metadata.get("model_file") if metadata else None
    framework = metadata.get("framework") if metadata else None
    _, artifact_findings = check_artifacts(root, policies.artifact, model_file, framework)
    report.findings += artifact_findings
    requirements = root / "requirements.txt"
    if requirements.is_file():
        report.findings += check_requirements(requirements, policies.dependency)

    if metadata is None or findings:
        return report
    kernel = report.kernel = kernel_from_metadata(root, metadata)
    report.findings += check_handler(kernel)
    file_findings = check_model_file(kernel, policies.artifact)
    report.findings += file_findings
    model_unusable = any(f.code in {"KS101", "KS103"} for f in file_findings)
    if model_unusable or _model_blocked(report.findings, kernel.model_path):
        return report

    if not load_model:
        # Static checks only (the server loads the model itself, after it is live).
        if kernel.framework == "onnx":
            model, load_findings = load_onnx(kernel)
            report.findings += load_findings
            if model is not None:
                report.findings += compare_onnx_signature(kernel, model)
        return report
    runtime = _load_and_compare(kernel, report, device)
    if runtime is None:
        return report
    if run_golden_samples:
        served = _as_served(kernel, runtime, report)
        if served is None:
            runtime.close()
            return report
        runtime = served
        samples, sample_findings = load_samples(kernel)
        report.findings += sample_findings
        report.findings += run_samples(kernel, runtime, samples)
        report.samples_run = len(samples)
    if keep_runtime:
        report.runtime = runtime
    else:
        runtime.close()
    return report


def _load_and_compare(kernel: Kernel, report: ValidationReport, device: str) -> Runtime | None:
    signature_findings: list[Finding] = []
    if kernel.framework == "onnx":
        model, load_findings = load_onnx(kernel)
        report.findings += load_findings
        if model is None:
            return None
        signature_findings = compare_onnx_signature(kernel, model)
        del model
    try:
        runtime = load_runtime(kernel, device=device)
    except RuntimeLoadError as exc:
        code = "KS104" if "not installed" in str(exc) else "KS103"
        report.findings.append(Finding(
            code, str(kernel.model_path), "", str(exc),
            expected="a model the runtime can load",
            fix="pip install 'kernelshim[torch]'" if code == "KS104" else "re-export the model",
        ))
        return None
    if kernel.framework == "torchscript":
        signature_findings = check_torchscript_signature(kernel, getattr(runtime, "module", None))
    report.findings += signature_findings
    if signature_findings:
        runtime.close()
        return None
    return runtime


def _as_served(kernel: Kernel, runtime: Runtime, report: ValidationReport) -> Runtime | None:
    """The runtime with the kernel's handler around it, as ``shim serve`` runs it.

    This imports the handler: kernel source code, in plain sight and reviewed like the rest of the
    repository (unlike code hidden in a pickle). Only the golden samples need it, so
    ``--skip-samples`` and the static mode never import it.
    """
    if any(f.code == "KS008" for f in report.findings):
        return None  # the handler is broken: the golden samples cannot run as served
    try:
        return with_handler(runtime, kernel)
    except HandlerLoadError as exc:
        report.findings.append(Finding(
            "KS008", str(handler_file(kernel)), "", str(exc),
            expected="a handler module that imports cleanly",
            fix="import only packages the runtime image or the kernel's requirements.txt provide, and "
            "do no work at import time that can fail",
        ))
        return None


def validate_many(paths: list[Path], **options: Any) -> list[ValidationReport]:
    return [validate_kernel(p, **options) for p in paths]
