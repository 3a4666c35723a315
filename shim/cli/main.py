"""Entry point of the ``shim`` console script.

Each sub-command lives in its own module exposing ``register(subparsers)``; the module adds its
parser and sets ``handler`` to a function ``(argparse.Namespace) -> int``. Heavy imports happen
inside handlers so ``shim --help`` and the pre-commit hooks start fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from shim import __version__
from shim.cli.errors import CommandFailed, UsageError

COMMAND_MODULES: tuple[str, ...] = (
    "shim.cli.validate_cmd",
    "shim.cli.profile_cmd",
    "shim.cli.init_cmd",
    "shim.cli.lineage_cmd",
    "shim.cli.serve_cmd",
    "shim.cli.hook_cmd",
    "shim.cli.image_cmd",
    "shim.cli.tf_cmd",
    "shim.cli.deploy_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shim",
        description="Validate, serve, package and deploy model kernels.",
    )
    parser.add_argument("--version", action="version", version=f"kernelshim {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a command whose module is not part of this build
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except UsageError as exc:
        print(f"shim {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except CommandFailed as exc:
        print(f"shim {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug in kernelshim, not bad input: say so in one line
        if os.environ.get("SHIM_DEBUG"):
            raise
        print(
            f"shim {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(this is a kernelshim bug; rerun with SHIM_DEBUG=1 for the traceback and report it)",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
