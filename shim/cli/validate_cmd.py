"""``shim validate KERNEL_DIR...``: every contract and policy check, all findings at once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shim.cli.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check kernels against the contract and policies",
        description="Check kernel directories. Exit 0: no errors (warnings are printed); 1: errors, or "
        "warnings under --strict; 2: usage error.",
    )
    parser.add_argument("kernels", nargs="+", type=Path, metavar="KERNEL_DIR")
    parser.add_argument("--format", choices=("text", "json", "github"), default="text")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write a JUnit XML report")
    parser.add_argument("--policy-dir", type=Path,
                        help="directory whose policy files replace the shipped ones")
    parser.add_argument("--skip-samples", action="store_true", help="do not run the golden samples")
    parser.add_argument("--strict", action="store_true",
                        help="warnings fail too (exit 1), not only errors")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shim.contract.report import RENDERERS, render_junit
    from shim.contract.validator import validate_kernel
    from shim.policy.loader import PolicyError, load_policies

    missing = [str(p) for p in args.kernels if not p.exists()]
    if missing:
        raise UsageError(f"no such kernel directory: {', '.join(missing)}")
    try:
        policies = load_policies(args.policy_dir)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    reports = [
        validate_kernel(path, policies=policies, run_golden_samples=not args.skip_samples)
        for path in args.kernels
    ]
    print(RENDERERS[args.format](reports, strict=args.strict))
    if args.junit:
        args.junit.write_text(render_junit(reports, strict=args.strict), encoding="utf-8")
    sys.stdout.flush()
    return 0 if all(r.passes(args.strict) for r in reports) else 1
