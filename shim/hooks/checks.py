"""The three hook checks, each run once per kernel and answered from the result cache when the
kernel, the policies and kernelshim are unchanged.

``validate`` is the full validator (``shim validate``); ``dependencies`` only the requirements.txt
contract; ``no-pickle`` only the artifact gate (deny-by-default layout, every file proven by content).
Heavy imports (numpy, onnx, runtimes, jsonschema) happen only on a cache miss.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from shim.contract.results import ValidationReport
from shim.findings import Finding
from shim.hooks.cache import ResultCache, environment_fingerprint, kernel_manifest
from shim.spec.layout import REQUIREMENTS_FILE

if TYPE_CHECKING:
    from shim.policy.loader import Policies

CheckFunction = Callable[[Path, "Policies"], tuple[list[Finding], int]]


def _validate(root: Path, policies: Policies) -> tuple[list[Finding], int]:
    from shim.contract.validator import validate_kernel

    report = validate_kernel(root, policies=policies, device="cpu")
    return report.findings, report.samples_run


def _dependencies(root: Path, policies: Policies) -> tuple[list[Finding], int]:
    from shim.policy.dependencies import check_requirements

    requirements = root / REQUIREMENTS_FILE
    if not requirements.is_file():
        return [], 0
    return check_requirements(requirements, policies.dependency), 0


def _no_pickle(root: Path, policies: Policies) -> tuple[list[Finding], int]:
    """The artifact gate alone: layout, roles and content (pickles included)."""
    from shim.contract.kernel import read_metadata_leniently
    from shim.policy.gate import Declaration, check_artifacts

    declaration = Declaration.from_metadata(read_metadata_leniently(root))
    return check_artifacts(root, policies.artifact, declaration).findings, 0


#: check name -> (function, the only files its result depends on; None = the whole kernel)
CHECKS: dict[str, tuple[CheckFunction, list[str] | None]] = {
    "validate": (_validate, None),
    "dependencies": (_dependencies, [REQUIREMENTS_FILE]),
    "no-pickle": (_no_pickle, None),
}


def run_checks(
    check: str, roots: list[Path], policy_dir: Path | None = None, cache: ResultCache | None = None
) -> list[ValidationReport]:
    """Run ``check`` on every kernel root; PolicyError propagates (a platform problem, not a finding)."""
    from shim.policy.loader import effective_policy_files

    function, only = CHECKS[check]
    cache = cache or ResultCache()
    environment = environment_fingerprint(effective_policy_files(policy_dir))
    policies: Policies | None = None
    reports = []
    for root in roots:
        manifest = kernel_manifest(root, cache.hasher(root), only)
        key = cache.key(check, root, manifest, environment) if manifest is not None else None
        hit = cache.get(check, root, key) if key is not None else None
        if hit is not None:
            reports.append(ValidationReport(root, hit.findings, samples_run=hit.samples_run, cached=True))
            continue
        if policies is None:
            from shim.policy.loader import load_policies

            policies = load_policies(policy_dir)
        findings, samples_run = function(root, policies)
        if key is not None:  # a kernel too large to key is never cached
            cache.put(check, root, key, findings, samples_run)
        reports.append(ValidationReport(root, findings, samples_run=samples_run))
    return reports
