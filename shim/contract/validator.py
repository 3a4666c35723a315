"""The kernel validator: every check, all findings at once.

Order matters for safety, not for reporting. The artifact gate (``shim.policy.gate``) runs first,
in a budgeted child process: a kernel holds only the files its contract names, each proven by
content, and nothing else is opened by any later check (a link or FIFO is never read, a refused
file is never parsed). Then the static contract checks (schema, requirements, handler syntax, the
ONNX graph against the declared tensors). Only a kernel that passed the gate has its model loaded
and its golden samples run, in a second sandboxed child (``shim.contract.model_run``).
Findings from independent checks are all reported in one run so a data scientist fixes
everything in one go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shim.contract.handler_check import check_handler
from shim.contract.kernel import read_metadata, read_metadata_leniently
from shim.contract.lineage_check import check_lineage
from shim.contract.memory_budget import DEFAULT_HEADROOM, check_memory_budget
from shim.contract.model_check import check_model_file, compare_onnx_signature, load_onnx
from shim.contract.profile_check import check_profile, profile_cap
from shim.contract.results import MemoryPeak, ValidationReport
from shim.findings import Finding
from shim.policy.dependencies import check_requirements
from shim.policy.gate import Declaration, check_artifacts
from shim.policy.loader import Policies, load_policies
from shim.spec.kernel import kernel_from_metadata
from shim.spec.layout import METADATA_FILE, REQUIREMENTS_FILE

__all__ = ["ValidationReport", "validate_kernel", "validate_many"]


def validate_kernel(
    kernel_dir: Path | str,
    *,
    policies: Policies | None = None,
    device: str = "cpu",
    run_golden_samples: bool = True,
    load_model: bool = True,
) -> ValidationReport:
    """Run every check on one kernel directory.

    With ``load_model=False`` only the static checks run (gate, policies, schema, ONNX graph): the
    server uses that before it starts, then loads the model and runs the samples itself while
    already answering health probes. ``run_golden_samples=False`` (``--skip-samples``) still loads
    the model to check its signature but never imports the handler.
    """
    root = Path(kernel_dir)
    report = ValidationReport(root)
    policies = policies or load_policies()
    metadata, findings = read_metadata(root)
    report.findings += findings
    if not root.is_dir():
        return report

    declaration = Declaration.from_metadata(metadata or read_metadata_leniently(root))
    gate = check_artifacts(root, policies.artifact, declaration)
    report.findings += gate.findings
    if (root / REQUIREMENTS_FILE).exists() and not gate.blocks(REQUIREMENTS_FILE):
        report.findings += check_requirements(root / REQUIREMENTS_FILE, policies.dependency)

    if metadata is None or findings:
        return report
    kernel = report.kernel = kernel_from_metadata(root, metadata)
    report.findings += check_lineage(str(root / METADATA_FILE), metadata,
                                     policies.dependency["runtime_packages"])
    handler = (kernel.metadata.get("preprocessing") or {}).get("handler")
    if not (handler and gate.blocks(handler)):
        report.findings += check_handler(kernel)
    profile_name = (kernel.metadata.get("monitoring") or {}).get("profile")
    if profile_name and not gate.blocks(profile_name):
        report.findings += check_profile(kernel, profile_cap(policies.artifact))
    model_name = kernel.metadata["model_file"]
    file_findings = check_model_file(kernel, policies.artifact)
    report.findings += file_findings
    if file_findings or gate.blocks(model_name) or gate.blocks(METADATA_FILE):
        return report

    if kernel.framework == "onnx":
        model, load_findings = load_onnx(kernel)
        report.findings += load_findings
        if model is not None:
            report.findings += compare_onnx_signature(kernel, model)
        del model
    elif kernel.framework == "torch_export":
        from shim.contract.torch_export_signature import check_torch_export_signature

        depth = int(policies.artifact["role_limits"]["json_depth"])
        report.findings += check_torch_export_signature(kernel, depth)
    if not load_model or report.errors:
        return report  # nothing from a kernel with any error is loaded or run (warnings do not stop it)
    report.findings += _run_model(kernel_dir=root, policies=policies, device=device,
                                  run_golden_samples=run_golden_samples, report=report)
    return report


def _run_model(kernel_dir: Path, policies: Policies, device: str, run_golden_samples: bool,
               report: ValidationReport) -> list[Finding]:
    """Model load, signature and golden samples in a sandboxed child process."""
    from shim.sandbox import Budget, SandboxFailure, run_isolated

    budget = Budget.from_policy(policies.artifact["sample_run"])
    if device != "cpu":  # CUDA reserves far more address space than it uses: no RLIMIT_AS there
        budget = Budget(budget.wall_seconds, budget.cpu_seconds, None)
    payload = {"root": str(kernel_dir.absolute()), "device": device, "run_golden_samples": run_golden_samples}
    try:
        answer = run_isolated("shim.contract.model_run:run_in_child", payload, budget)
    except SandboxFailure as exc:
        return [Finding(
            "KS410", exc.last or str(kernel_dir), "",
            f"loading the model and running the golden samples {exc}",
            expected="a model and handler that run each golden sample within policies/"
            "artifact_policy.yaml's sample_run budget",
            fix="make the handler and model fast and small enough, or raise sample_run in the policy",
        )]
    report.samples_run = int(answer["samples_run"])
    findings = [Finding(**{k: v for k, v in f.items() if k != "title"}) for f in answer["findings"]]
    memory = answer.get("memory")
    if memory:
        report.memory_peak = MemoryPeak(int(memory["peak_rss_bytes"]), memory["device_peak_bytes"],
                                        int(memory["batch_size"]))
        assert report.kernel is not None
        findings += check_memory_budget(report.kernel, report.memory_peak.rss_bytes,
                                        report.memory_peak.batch_size,
                                        float(policies.artifact.get("memory_headroom", DEFAULT_HEADROOM)))
    return findings


def validate_many(paths: list[Path], **options: Any) -> list[ValidationReport]:
    return [validate_kernel(p, **options) for p in paths]
