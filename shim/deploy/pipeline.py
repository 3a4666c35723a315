"""The deploy pipeline: validate -> build -> push -> resolve digest -> tfvars -> plan -> gate ->
(approval) -> apply -> report.

Every stage is one call into the library that already does that job (``validate_kernel``,
``build_kernel``, ``push_image``, ``resolve_digest``, ``tfvars_for``, ``TerraformRunner``,
``PlanGate``); this module only orders them, times them and stops at the first failure with the
stage's name. Nothing is applied unless the gate passed and the caller approved that very plan
file (the runner re-checks its SHA-256 before apply), so a failure anywhere before apply leaves
the environment as it was; the only side effects before then are the pushed image (content
addressed, harmless) and the plan and tfvars files under ENV_DIR/.terraform/kernelshim.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from shim.deploy.environment import DeployEnvironment, image_tag

#: The stages in order; progress lines number them out of this list.
STAGES = ("validate", "build", "push", "resolve", "tfvars", "plan", "gate", "apply", "outputs")
TFVARS_FILE = "kernel.tfvars.json"
#: Providers the shipped modules need; named when the environment's plan deploys nothing real.
MODULE_PROVIDERS = {"k8s": "hashicorp/kubernetes", "sagemaker": "hashicorp/aws"}

Progress = Callable[[str], None]
Confirm = Callable[[str], bool]


class DeployFailed(Exception):
    """A stage failed; ``stage`` names it and the message says why and what to do."""

    def __init__(
        self, stage: str, message: str, exit_code: int = 3, details: list[str] | None = None
    ) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self.reason = message
        self.exit_code = exit_code
        self.details = details or []


@dataclass
class DeployOptions:
    approve: bool = False
    dry_run: bool = False
    allow_destroy: bool = False
    plugin_dir: Path | None = None
    registry: str | None = None
    runtime_image: str | None = None
    policy_dir: Path | None = None


@dataclass
class StageTime:
    stage: str
    seconds: float
    detail: str = ""


@dataclass
class DeployResult:
    kernel: str
    image: str = ""
    digest: str = ""
    digest_source: str = ""
    tfvars_file: Path | None = None
    plan_summary: str = ""
    changes: dict[str, int] = field(default_factory=dict)
    gate_passed: bool | None = None
    violations: list[str] = field(default_factory=list)
    applied: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stages: list[StageTime] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "image": self.image,
            "digest": self.digest,
            "digest_source": self.digest_source,
            "tfvars_file": str(self.tfvars_file) if self.tfvars_file else None,
            "changes": self.changes,
            "gate": {"passed": self.gate_passed, "violations": self.violations},
            "applied": self.applied,
            "outputs": self.outputs,
            "notes": self.notes,
            "stages": [
                {"stage": s.stage, "seconds": round(s.seconds, 3), "detail": s.detail} for s in self.stages
            ],
        }


def _silent(_: str) -> None:
    pass


def _refuse(_: str) -> bool:
    return False


class Deployer:
    """Runs the stages for one kernel into one environment."""

    def __init__(
        self,
        kernel_dir: Path,
        environment: DeployEnvironment,
        options: DeployOptions | None = None,
        *,
        progress: Progress = _silent,
        build_log: Progress = _silent,
        confirm: Confirm = _refuse,
        engine: Any = None,
        terraform_log: TextIO | None = None,
    ) -> None:
        self.kernel_dir = Path(kernel_dir)
        self.env = environment
        self.options = options or DeployOptions()
        self.progress = progress
        self.build_log = build_log
        self.confirm = confirm
        self._engine = engine
        self.terraform_log = terraform_log or sys.stderr
        self.policy_dir = self.options.policy_dir or environment.policy_dir
        self.registry = self.options.registry or environment.registry
        self.runtime_image = self.options.runtime_image or environment.runtime_image
        self.result = DeployResult(kernel=str(kernel_dir))

    # -- bookkeeping ------------------------------------------------------------------------------

    def _stage(self, name: str, started: float, detail: str = "") -> None:
        seconds = time.monotonic() - started
        self.result.stages.append(StageTime(name, seconds, detail))
        number = STAGES.index(name) + 1
        self.progress(f"[{number}/{len(STAGES)}] {name:<8} {seconds:7.1f} s  {detail}".rstrip())

    # -- the stages -------------------------------------------------------------------------------

    def run(self) -> DeployResult:
        report, kernel = self.validate()
        client = self._connect()
        try:
            tag = self.build(client)
            push_output = self.push(client, tag)
        finally:
            if self._engine is None:
                client.close()
        image = self.resolve(tag, push_output)
        return self.release(kernel, image, report)

    def release(self, kernel, image: str, report: Any = None) -> DeployResult:
        """The Terraform half: tfvars -> plan -> gate -> (approval) -> apply -> outputs.

        ``image`` is the pushed image by digest (``REGISTRY/REPOSITORY@sha256:...``); the gate
        holds the plan to that digest (KS612).
        """
        if not self.result.digest:
            self.result.image, self.result.digest = image, image.rpartition("@")[2]
        tfvars_file = self.write_tfvars(kernel, image, report)
        runner, gated = self.plan_and_gate(tfvars_file)
        if not gated.result.ok:
            raise DeployFailed(
                "gate",
                f"the plan failed the policy gate with {len(gated.result.findings)} violation(s); "
                "nothing was applied",
                exit_code=1,
                details=self.result.violations,
            )
        if self.options.dry_run:
            self.result.notes.append("dry run: stopped after the gate; nothing was applied")
            return self.result
        if not (self.options.approve or self.confirm(self.result.plan_summary)):
            self.result.notes.append("not approved: nothing was applied")
            return self.result
        self.apply(runner, gated)
        self.collect_outputs(runner)
        return self.result

    def validate(self):
        from shim.contract.kernel import KernelError, read_kernel
        from shim.contract.validator import validate_kernel
        from shim.policy.loader import PolicyError, load_policies

        started = time.monotonic()
        if not self.kernel_dir.is_dir():
            raise DeployFailed("validate", f"{self.kernel_dir}: no such kernel directory", exit_code=2)
        try:
            policies = load_policies(self.policy_dir)
        except PolicyError as exc:
            raise DeployFailed("validate", str(exc), exit_code=2) from None
        report = validate_kernel(self.kernel_dir, policies=policies)
        if not report.ok:
            raise DeployFailed(
                "validate",
                f"{self.kernel_dir} has {len(report.findings)} contract finding(s); fix them "
                f"(`shim validate {self.kernel_dir}` shows them) and deploy again",
                exit_code=1,
                details=[f.render() for f in report.findings],
            )
        try:
            kernel = report.kernel or read_kernel(self.kernel_dir)
        except KernelError as exc:  # pragma: no cover - a clean report always has its kernel
            raise DeployFailed("validate", str(exc), exit_code=1) from None
        self.result.kernel = f"{kernel.name} {kernel.version}"
        peak = getattr(getattr(report, "memory_peak", None), "rss_bytes", None)
        detail = f"{kernel.name} {kernel.version}: {report.samples_run} golden sample(s) passed"
        if isinstance(peak, int):
            detail += f", memory peak {peak} bytes"
        self._stage("validate", started, detail)
        return report, kernel

    def _connect(self):
        from shim.images.engine import EngineUnavailable, connect

        if self._engine is not None:
            return self._engine
        try:
            return connect()
        except EngineUnavailable as exc:
            raise DeployFailed("build", str(exc)) from None

    def build(self, client) -> str:
        from shim.contract.kernel import read_kernel
        from shim.images.builder import BuildFailed, RuntimeMismatch, build_kernel
        from shim.images.context import ContextError
        from shim.images.digest import KernelContentError

        started = time.monotonic()
        kernel = read_kernel(self.kernel_dir)
        tag = image_tag(self.registry, kernel.name, kernel.version)
        self._require_runtime(client)
        try:
            built = build_kernel(
                client,
                self.kernel_dir,
                self.runtime_image,
                tag=tag,
                network_mode=self.env.build_network,
                progress=self.build_log,
            )
        except (KernelContentError, ContextError, RuntimeMismatch) as exc:
            raise DeployFailed("build", str(exc)) from None
        except BuildFailed as exc:
            raise DeployFailed("build", str(exc)) from None
        self._stage("build", started, f"{tag} ({built.image_id[:19]})")
        return tag

    def _require_runtime(self, client) -> None:
        from docker.errors import APIError, ImageNotFound

        try:
            client.images.get(self.runtime_image)
        except ImageNotFound:
            raise DeployFailed(
                "build",
                f"the Level-1 runtime image {self.runtime_image} is not in the engine; build it first "
                "(`shim image build-base --level 0 ...` then `shim image build-base --level 1 --tag "
                f"{self.runtime_image}`) or name another one with --runtime-image",
            ) from None
        except APIError as exc:
            raise DeployFailed("build", f"the engine cannot look up {self.runtime_image}: {exc}") from None

    def push(self, client, tag: str) -> list[str]:
        from shim.images.builder import BuildFailed, push_image

        started = time.monotonic()
        try:
            output = push_image(client, tag, self.build_log, tls_verify=self.env.tls_verify)
        except BuildFailed as exc:
            raise DeployFailed("push", exc.reason) from None
        self._stage("push", started, tag)
        return output

    def resolve(self, tag: str, push_output: list[str]) -> str:
        from shim.images.registry import DigestUnresolved, resolve_digest, split_reference

        started = time.monotonic()
        try:
            resolved = resolve_digest(tag, push_output, tls_verify=self.env.tls_verify)
            registry, repository, _ = split_reference(tag)
        except DigestUnresolved as exc:
            raise DeployFailed("resolve", str(exc)) from None
        image = f"{registry}/{repository}@{resolved.digest}"
        self.result.image, self.result.digest, self.result.digest_source = (
            image,
            resolved.digest,
            resolved.source,
        )
        if resolved.note:
            self.result.notes.append(resolved.note)
        self._stage("resolve", started, f"{image} (from the {resolved.source})")
        return image

    def write_tfvars(self, kernel, image: str, report) -> Path:
        from shim.iac.image_ref import ImageRefError
        from shim.iac.runner import PLAN_DIR
        from shim.iac.tfvars import TfvarsError, tfvars_for

        started = time.monotonic()
        try:
            values = tfvars_for(kernel, image, self.env.module, report)
        except (ImageRefError, TfvarsError) as exc:
            raise DeployFailed("tfvars", str(exc), exit_code=1) from None
        directory = self.env.root / PLAN_DIR
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / TFVARS_FILE
        path.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        self.result.tfvars_file = path
        self._stage("tfvars", started, str(path.relative_to(self.env.root)))
        return path

    def plan_and_gate(self, tfvars_file: Path):
        from shim.iac.gate_report import change_counts, render_text
        from shim.iac.plan_gate import PlanGate
        from shim.iac.plan_json import PlanFormatError
        from shim.iac.plan_policy import load_plan_policy
        from shim.iac.runner import RunOptions, TerraformRunner, TerraformStepFailed
        from shim.iac.terraform_binary import TerraformNotFound, find_terraform
        from shim.policy.loader import PolicyError

        started = time.monotonic()
        try:
            policy = load_plan_policy(self.policy_dir)
            binary = find_terraform()
        except (PolicyError, TerraformNotFound) as exc:
            raise DeployFailed("plan", str(exc), exit_code=2) from None
        runner = TerraformRunner(
            binary,
            self.env.root,
            RunOptions(var_files=[tfvars_file], plugin_dir=self.options.plugin_dir),
            log=self.terraform_log,
        )
        gate = PlanGate(
            policy, allow_destroy=self.options.allow_destroy, expected_image_digest=self.result.digest
        )
        try:
            gated = runner.plan_and_gate(gate)
        except TerraformStepFailed as exc:
            hint = ""
            if exc.step.split()[1:2] == ["init"]:
                provider = MODULE_PROVIDERS.get(self.env.module, "its providers")
                hint = (
                    f"; terraform init could not install the providers this root needs ({provider}): "
                    "where the registry is out of reach, pass --plugin-dir with a provider mirror"
                )
            raise DeployFailed("plan", f"{exc}{hint}; nothing was applied") from None
        except PlanFormatError as exc:
            raise DeployFailed("plan", str(exc)) from None
        self._stage("plan", started, str(gated.plan_file.relative_to(self.env.root)))
        started = time.monotonic()
        result = gated.result
        counts = change_counts(result)
        self.result.changes = {
            verb: counts.get(verb, 0) for verb in ("create", "update", "replace", "delete")
        }
        self.result.plan_summary = render_text(result)
        self.result.gate_passed = result.ok
        self.result.violations = [f.render() for f in result.findings]
        if not [c for c in result.plan.resource_changes if c.mode == "managed"]:
            self.result.notes.append(
                f"{self.env.root.name} manages no resources (a provider-free root): no endpoint was "
                "deployed. The real modules (terraform/modules) need the "
                f"{MODULE_PROVIDERS.get(self.env.module, 'cloud')} provider, which a machine without "
                "access to the provider registry (such as this project's CI) cannot fetch; deploy into "
                "a root like terraform/examples/* where the registry or a --plugin-dir mirror is reachable"
            )
        self._stage(
            "gate", started, "passed" if result.ok else f"FAILED ({len(result.findings)} violation(s))"
        )
        self.progress(self.result.plan_summary)
        return runner, gated

    def apply(self, runner, gated) -> None:
        from shim.iac.runner import PlanChangedError, TerraformStepFailed

        started = time.monotonic()
        try:
            runner.apply_gated(gated)
        except (PlanChangedError, TerraformStepFailed) as exc:
            raise DeployFailed(
                "apply",
                f"{exc}; Terraform's state records what it did apply (`terraform show` in "
                f"{self.env.root}); rerun `shim deploy` to converge, or deploy the previous "
                "image to roll back",
            ) from None
        self.result.applied = True
        self._stage("apply", started, str(gated.plan_file.relative_to(self.env.root)))

    def collect_outputs(self, runner) -> None:
        from shim.iac.runner import TerraformStepFailed

        started = time.monotonic()
        try:
            self.result.outputs = runner.outputs()
        except (TerraformStepFailed, ValueError) as exc:
            self.result.notes.append(f"applied, but the outputs could not be read: {exc}")
        self._stage("outputs", started, ", ".join(sorted(self.result.outputs)))
