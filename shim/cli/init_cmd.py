"""``shim init NAME --model FILE``: scaffold a kernel from a model file."""

from __future__ import annotations

import argparse
from pathlib import Path

from shim.cli.errors import CommandFailed, UsageError


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
    parser.add_argument("--sample", action="append", default=[], metavar="FILE",
                        help="a real input for the golden sample instead of generated ones: request.json "
                        "(a v2 inference request) or input.npy (NAME=input.npy per input; repeat)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shim.contract.scaffold import ScaffoldError, parse_tensor_option, scaffold_kernel

    destination = args.dir or Path(args.name)
    notes: list[str] = []
    try:
        inputs = [parse_tensor_option(text) for text in args.input] or None
        scaffold_kernel(args.name, args.model, destination, inputs, max_batch_size=args.max_batch_size,
                        sample=args.sample or None, notes=notes)
    except ScaffoldError as exc:
        for note in notes:
            print(f"note: {note}")
        if exc.exit_code == 2:
            raise UsageError(str(exc)) from None
        raise CommandFailed(str(exc), exc.exit_code) from None
    for note in notes:
        print(f"note: {note}")
    print(f"created {destination}/: fill in the FILL_ME fields of model_metadata.json, then run "
          f"`shim validate {destination}`")
    return 0
