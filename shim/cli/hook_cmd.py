"""``shim hook CHECK FILES...``: the entry points of the pre-commit hooks in .pre-commit-hooks.yaml.

pre-commit passes the staged files; each is mapped to its kernel (the nearest directory above it
holding model_metadata.json, within the repository) and every affected kernel is checked once.
Findings are printed as text (pre-commit shows them when the hook fails); exit 1 on errors, and on
warnings too with ``--strict`` (add it to the hook's ``args`` in .pre-commit-config.yaml).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shim.cli.errors import UsageError

HOOKS = {
    "validate": "every contract and policy check (shim validate) on each kernel holding a file",
    "dependencies": "only the requirements.txt dependency contract",
    "no-pickle": "only the artifact policy: size cap, forbidden files, links and the pickle opcode scan",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hook",
        help="run a pre-commit hook check on the kernels containing FILES (used by .pre-commit-hooks.yaml)",
        description="Map files to their kernels and check them, caching results by content hash. "
        "Exit 0: clean; 1: findings; 2: usage error.",
    )
    checks = parser.add_subparsers(dest="check", metavar="CHECK", required=True)
    for name, summary in HOOKS.items():
        check = checks.add_parser(name, help=summary, description=summary)
        check.add_argument("files", nargs="*", type=Path, metavar="FILE",
                           help="changed files; each selects the kernel containing it")
        check.add_argument("--policy-dir", type=Path,
                           help="directory whose policy files replace the shipped ones")
        check.add_argument("--no-cache", action="store_true", help="re-run the checks even if cached")
        check.add_argument("--strict", action="store_true",
                           help="warnings fail the hook too, not only errors")
        check.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shim.contract.report import render_text
    from shim.hooks.cache import ResultCache
    from shim.hooks.checks import run_checks
    from shim.hooks.discovery import kernel_roots
    from shim.policy.loader import PolicyError

    roots = kernel_roots(args.files)
    if not roots:
        return 0
    cache = ResultCache(enabled=not args.no_cache)
    try:
        reports = run_checks(args.check, roots, args.policy_dir, cache)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    print(render_text(reports, strict=args.strict))
    cached = sum(1 for r in reports if r.cached)
    if cached:
        print(f"kernelshim: {cached} of {len(reports)} kernel result(s) served from cache "
              "(content, policies and kernelshim unchanged)")
    if cache.warning:
        print(f"kernelshim: warning: {cache.warning}; results are not cached", file=sys.stderr)
    sys.stdout.flush()
    return 0 if all(r.passes(args.strict) for r in reports) else 1
