"""``shim tf``: Terraform variables from a kernel, the gated plan/apply runner, the gate alone,
and CDK Terrain synth.

Exit codes: 0 success / gate passed; 1 gate violations; 2 usage or input error; 3 a terraform
command failed (its own output says why).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shim.cli.errors import CommandFailed, UsageError

MODULE_CHOICES = ("k8s", "sagemaker")
TERRAFORM_FAILED = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tf",
        help="Terraform: variables from a kernel, gated plan/apply, the plan gate, CDK synth",
        description="Ops side: turn a validated kernel into Terraform and apply plans behind a policy gate.",
    )
    tf = parser.add_subparsers(dest="tf_command", metavar="SUBCOMMAND", required=True)

    p_vars = tf.add_parser(
        "vars",
        help="print Terraform variables (JSON) for a kernel",
        description="Print the endpoint module's variables, derived from the kernel's "
        "contract, as JSON: shim tf vars KERNEL --image REF@sha256:... > endpoint.auto.tfvars.json",
    )
    p_vars.add_argument("kernel", type=Path, metavar="KERNEL_DIR")
    p_vars.add_argument(
        "--image", required=True, metavar="REF@sha256:DIGEST", help="the kernel's Level-2 image, by digest"
    )
    p_vars.add_argument("--module", choices=MODULE_CHOICES, default="k8s", help="target module (default k8s)")
    p_vars.add_argument(
        "--validation-report",
        type=Path,
        metavar="FILE.json",
        help="`shim validate --format json` output for this kernel: its measured memory peak becomes "
        "measured_memory_peak_bytes (the plan gate checks the pod's memory against it)",
    )
    p_vars.set_defaults(handler=run_vars)

    for name, help_text in (
        ("plan", "init, plan, show -json and the policy gate; print the summary"),
        ("apply", "plan and gate as `tf plan`, then apply that plan file only if the gate passed"),
    ):
        p_run = tf.add_parser(name, help=help_text, description=help_text)
        p_run.add_argument("directory", type=Path, metavar="DIR", help="Terraform root configuration")
        p_run.add_argument(
            "--var-file",
            action="append",
            type=Path,
            default=[],
            metavar="FILE",
            help="passed to terraform plan (repeatable); *.auto.tfvars(.json) load by themselves",
        )
        p_run.add_argument(
            "--plugin-dir",
            type=Path,
            metavar="DIR",
            help="install providers only from this directory (air-gapped runs)",
        )
        _add_gate_options(p_run)
        p_run.set_defaults(handler=run_apply if name == "apply" else run_plan)

    p_gate = tf.add_parser(
        "gate",
        help="run the policy gate on a plan JSON produced elsewhere",
        description="Gate a `terraform show -json PLANFILE` document. Exit 0 pass, 1 violations.",
    )
    p_gate.add_argument("plan_json", type=Path, metavar="PLAN.json")
    _add_gate_options(p_gate)
    p_gate.set_defaults(handler=run_gate)

    p_synth = tf.add_parser(
        "synth",
        help="synthesize Terraform JSON with the SecureModelEndpoint construct",
        description="Synthesize a CDK Terrain stack calling the endpoint module with the "
        "kernel's values (needs the iac extra and Node).",
    )
    p_synth.add_argument("kernel", type=Path, metavar="KERNEL_DIR")
    p_synth.add_argument("--image", required=True, metavar="REF@sha256:DIGEST")
    p_synth.add_argument("--module", choices=MODULE_CHOICES, default="k8s")
    p_synth.add_argument(
        "--platform-vars",
        type=Path,
        metavar="FILE.json",
        help="JSON object of platform variables (namespace, vpc_subnet_ids, ...)",
    )
    p_synth.add_argument(
        "--out", type=Path, default=Path("cdktf.out"), metavar="DIR", help="default cdktf.out"
    )
    p_synth.add_argument("--stack", default=None, help="stack name (default: the model name)")
    p_synth.set_defaults(handler=run_synth)


def _add_gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-destroy", action="store_true", help="allow the plan to delete or replace endpoint resources"
    )
    parser.add_argument(
        "--policy-dir", type=Path, help="directory whose plan_policy.yaml replaces the shipped one"
    )
    parser.add_argument("--format", choices=("text", "json", "github"), default="text")


def _read_kernel(path: Path):
    from shim.contract.kernel import KernelError, read_kernel

    if not path.exists():
        raise UsageError(f"no such kernel directory: {path}")
    try:
        return read_kernel(path)
    except KernelError as exc:
        details = "\n".join(f.render() for f in exc.findings)
        raise UsageError(f"{path} is not a valid kernel (run `shim validate {path}`):\n{details}") from None


def run_vars(args: argparse.Namespace) -> int:
    from shim.iac.image_ref import ImageRefError
    from shim.iac.tfvars import TfvarsError, tfvars_for

    kernel = _read_kernel(args.kernel)
    report = _read_validation_report(args.validation_report) if args.validation_report else None
    try:
        values = tfvars_for(kernel, args.image, args.module, report)
    except (ImageRefError, TfvarsError) as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(values, indent=2, sort_keys=True))
    return 0


def _read_validation_report(path: Path) -> dict:
    """One kernel's entry of a `shim validate --format json` document (or that entry alone)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the validation report: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise UsageError(f"{path}: the validation report is not JSON (write it with "
                         "`shim validate KERNEL --format json > FILE.json`)") from None
    if isinstance(data, dict) and isinstance(data.get("kernels"), list):
        kernels = [k for k in data["kernels"] if isinstance(k, dict)]
        if len(kernels) != 1:
            raise UsageError(f"{path}: expected the report of exactly one kernel, found {len(kernels)}; "
                             "validate this kernel alone")
        data = kernels[0]
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object from `shim validate --format json`")
    return data


def _gate(args: argparse.Namespace):
    from shim.iac.plan_gate import PlanGate
    from shim.iac.plan_policy import load_plan_policy
    from shim.policy.loader import PolicyError

    try:
        policy = load_plan_policy(args.policy_dir)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    return PlanGate(policy, allow_destroy=args.allow_destroy)


def _print_result(result, fmt: str) -> None:
    from shim.iac.gate_report import RENDERERS

    print(RENDERERS[fmt](result))
    sys.stdout.flush()


def run_gate(args: argparse.Namespace) -> int:
    from shim.iac.plan_json import PlanFormatError, load_plan

    gate = _gate(args)
    try:
        plan = load_plan(args.plan_json)
    except PlanFormatError as exc:
        raise UsageError(str(exc)) from None
    result = gate.evaluate(plan)
    _print_result(result, args.format)
    return 0 if result.ok else 1


def _runner(args: argparse.Namespace):
    from shim.iac.runner import RunOptions, TerraformRunner
    from shim.iac.terraform_binary import TerraformNotFound, find_terraform

    if not args.directory.is_dir():
        raise UsageError(f"no such Terraform directory: {args.directory}")
    missing = [str(f) for f in args.var_file if not f.is_file()]
    if missing:
        raise UsageError(f"no such var file: {', '.join(missing)}")
    if args.plugin_dir is not None and not args.plugin_dir.is_dir():
        raise UsageError(f"no such plugin directory: {args.plugin_dir}")
    try:
        binary = find_terraform()
    except TerraformNotFound as exc:
        raise CommandFailed(str(exc), 2) from None
    return TerraformRunner(
        binary, args.directory, RunOptions(var_files=args.var_file, plugin_dir=args.plugin_dir)
    )


def _plan_and_gate(args: argparse.Namespace):
    from shim.iac.plan_json import PlanFormatError
    from shim.iac.runner import TerraformStepFailed

    gate = _gate(args)
    runner = _runner(args)
    try:
        gated = runner.plan_and_gate(gate)
    except TerraformStepFailed as exc:
        raise CommandFailed(str(exc), TERRAFORM_FAILED) from None
    except PlanFormatError as exc:
        raise CommandFailed(str(exc), TERRAFORM_FAILED) from None
    _print_result(gated.result, args.format)
    return runner, gated


def run_plan(args: argparse.Namespace) -> int:
    _, gated = _plan_and_gate(args)
    if gated.result.ok:
        print(f"Plan file: {gated.plan_file} (apply with `shim tf apply {args.directory}`)", file=sys.stderr)
    return 0 if gated.result.ok else 1


def run_apply(args: argparse.Namespace) -> int:
    from shim.iac.runner import PlanChangedError, TerraformStepFailed

    runner, gated = _plan_and_gate(args)
    if not gated.result.ok:
        print("Not applying: the plan failed the policy gate.", file=sys.stderr)
        return 1
    try:
        runner.apply_gated(gated)
    except PlanChangedError as exc:
        raise CommandFailed(str(exc), 1) from None
    except TerraformStepFailed as exc:
        raise CommandFailed(str(exc), TERRAFORM_FAILED) from None
    print(f"Applied {gated.plan_file}", file=sys.stderr)
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from shim.iac.construct import ConstructInputError
    from shim.iac.image_ref import ImageRefError
    from shim.iac.tfvars import TfvarsError

    kernel = _read_kernel(args.kernel)
    platform: dict = {}
    if args.platform_vars is not None:
        try:
            platform = json.loads(args.platform_vars.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{args.platform_vars}: cannot read platform variables: {exc}") from None
        if not isinstance(platform, dict):
            raise UsageError(f"{args.platform_vars}: expected a JSON object of variable names to values")
    try:
        from shim.iac.synth import synth_kernel_endpoint
    except ImportError as exc:
        raise CommandFailed(
            f"CDK Terrain is not installed ({exc.name}); "
            "install the iac extra: pip install 'kernelshim[iac]'",
            2,
        ) from None
    try:
        stack_file = synth_kernel_endpoint(
            kernel, args.image, args.module, platform=platform, outdir=args.out, stack_name=args.stack
        )
    except (ImageRefError, TfvarsError, ConstructInputError) as exc:
        raise UsageError(str(exc)) from None
    print(stack_file)
    return 0
