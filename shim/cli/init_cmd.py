"""``shim init NAME --model FILE``: scaffold a kernel from a model file."""

from __future__ import annotations

import argparse
from pathlib import Path

from shim.cli.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init",
        help="scaffold a kernel directory from a model file",
        description="Create a kernel: metadata from the model's graph (ONNX, torch.export .pt2) or --input "
        "(TorchScript), "
        "a golden sample made by running the model, and FILL_ME placeholders that fail validation "
        "until filled.",
    )
    parser.add_argument("name", help="model name (DNS-1123 label, e.g. iris-classifier)")
    parser.add_argument("--model", required=True, type=Path,
                        help="model.onnx, a torch.export .pt2 or a TorchScript .pt (legacy) file")
    parser.add_argument("--input", action="append", default=[], metavar="NAME:DTYPE:SHAPE",
                        help="TorchScript input, e.g. x:FP32:-1x8 (repeat per input)")
    parser.add_argument("--dir", type=Path, help="kernel directory to create (default: ./NAME)")
    parser.add_argument("--max-batch-size", type=int, default=0,
                        help="enable dynamic batching up to this size")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shim.contract.scaffold import ScaffoldError, parse_tensor_option, scaffold_kernel
    from shim.runtimes.base import RuntimeLoadError

    destination = args.dir or Path(args.name)
    try:
        inputs = [parse_tensor_option(text) for text in args.input] or None
        scaffold_kernel(args.name, args.model, destination, inputs, max_batch_size=args.max_batch_size)
    except (ScaffoldError, RuntimeLoadError) as exc:
        raise UsageError(str(exc)) from None
    print(f"created {destination}/: fill in the FILL_ME fields of model_metadata.json, then run "
          f"`shim validate {destination}`")
    return 0
