"""``shim deploy KERNEL_DIR --env ENV_DIR``: validate, build, push, pin the digest, plan, gate and
(with approval) apply, in one command. A thin layer over :mod:`shim.deploy.pipeline`.

Progress lines (one per stage, with its time) and the engine's and Terraform's output go to
stderr; the final report goes to stdout (text or JSON). Exit codes: 0 deployed (or dry run /
not approved, as the report says); 1 the kernel's findings or the gate's violations; 2 usage or
environment error; 3 a stage failed (build, push, digest, terraform).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shim.cli.errors import CommandFailed, UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="validate, build, push, plan, gate and apply a kernel into an environment",
        description="One command from a kernel to an endpoint: validate -> build the Level-2 image -> "
        "push -> resolve the pushed digest -> write the tfvars -> terraform plan -> policy gate -> "
        "apply (only with --approve or a 'y' at the terminal). ENV_DIR is a Terraform root "
        "configuration with a deploy.json (contracts/deploy_env.schema.json).",
    )
    parser.add_argument("kernel", type=Path, metavar="KERNEL_DIR")
    parser.add_argument(
        "--env", required=True, type=Path, metavar="ENV_DIR", help="the environment to deploy into"
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--approve", action="store_true", help="apply without asking once the gate passed")
    when.add_argument("--dry-run", action="store_true", help="stop after the gate; apply nothing")
    parser.add_argument(
        "--allow-destroy", action="store_true", help="let the plan delete or replace endpoint resources"
    )
    parser.add_argument(
        "--policy-dir", type=Path, help="directory whose policy files replace the environment's"
    )
    parser.add_argument(
        "--registry", metavar="PREFIX", help="push to PREFIX/NAME:VERSION instead of deploy.json's registry"
    )
    parser.add_argument(
        "--runtime-image", metavar="REF", help="Level-1 runtime to build on instead of deploy.json's"
    )
    parser.add_argument(
        "--plugin-dir", type=Path, metavar="DIR", help="install providers only from this directory"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="final report format")
    parser.add_argument("--quiet", action="store_true", help="do not stream the build and Terraform output")
    parser.set_defaults(handler=run)


def _confirm_on_tty(_summary: str) -> bool:
    """The summary was printed with the gate's progress line; ask about exactly that plan."""
    try:
        answer = input("Apply this plan? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def render_text(result) -> str:
    lines = [f"Kernel:  {result.kernel}"]
    if result.image:
        lines.append(f"Image:   {result.image} (digest from the {result.digest_source})")
    if result.tfvars_file:
        lines.append(f"Tfvars:  {result.tfvars_file}")
    if result.changes:
        lines.append("Plan:    " + ", ".join(f"{n} to {verb}" for verb, n in result.changes.items()))
    if result.gate_passed is not None:
        lines.append("Gate:    " + ("passed" if result.gate_passed else f"FAILED ({len(result.violations)})"))
        lines.extend(f"  {violation}" for violation in result.violations)
    lines.append(f"Applied: {'yes' if result.applied else 'no'}")
    for name, value in sorted(result.outputs.items()):
        lines.append(f"Output:  {name} = {json.dumps(value)}")
    lines.extend(f"Note:    {note}" for note in result.notes)
    lines.append("Stages:  " + ", ".join(f"{s.stage} {s.seconds:.1f} s" for s in result.stages))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from shim.deploy.environment import DeployEnvError, load_environment
    from shim.deploy.pipeline import Deployer, DeployFailed, DeployOptions

    if not args.kernel.is_dir():
        raise UsageError(f"no such kernel directory: {args.kernel}")
    for option, path in (("--policy-dir", args.policy_dir), ("--plugin-dir", args.plugin_dir)):
        if path is not None and not path.is_dir():
            raise UsageError(f"{option}: no such directory: {path}")
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    if not (args.approve or args.dry_run or interactive):
        raise UsageError(
            "pass --approve to apply or --dry-run to stop after the gate (there is no terminal to confirm on)"
        )
    try:
        environment = load_environment(args.env)
    except DeployEnvError as exc:
        raise UsageError(str(exc)) from None

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def build_log(text: str) -> None:
        if not args.quiet:
            sys.stderr.write(text)
            sys.stderr.flush()

    options = DeployOptions(
        approve=args.approve,
        dry_run=args.dry_run,
        allow_destroy=args.allow_destroy,
        plugin_dir=args.plugin_dir,
        registry=args.registry,
        runtime_image=args.runtime_image,
        policy_dir=args.policy_dir,
    )
    deployer = Deployer(
        args.kernel,
        environment,
        options,
        progress=progress,
        build_log=build_log,
        confirm=_confirm_on_tty if interactive else lambda _summary: False,
    )
    try:
        result = deployer.run()
    except DeployFailed as exc:
        if exc.stage != "gate":  # the gate's violations are in the summary and the report
            for detail in exc.details:
                print(detail, file=sys.stderr)
        result = deployer.result
        _print(result, args.format)
        raise CommandFailed(f"stage {exc.stage} failed: {exc.reason}", exc.exit_code) from None
    _print(result, args.format)
    return 0


def _print(result, fmt: str) -> None:
    print(json.dumps(result.to_dict(), indent=2) if fmt == "json" else render_text(result))
    sys.stdout.flush()
