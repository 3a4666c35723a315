"""``shim lineage KERNEL_DIR --dvc FILE | --manifest FILE``: record (or ``--check``) the dataset
digest in the contract's ``lineage`` block; ``--code DIR`` records the git checkout's URL and commit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shim.cli.errors import CommandFailed, UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lineage",
        help="record the training dataset digest (DVC or a manifest) and code commit in a kernel",
        description="Fill the contract's lineage block: the md5 a DVC .dvc/dvc.lock file records "
        "(--dvc), or the SHA-256 of a manifest (--manifest); the training code's repository and "
        "commit (--code). With --check, compare the recorded digest with the file instead "
        "(exit 1 when they differ). The training environment is recorded by "
        "shim.lineage.capture() in the training script.",
    )
    parser.add_argument("kernel", type=Path, metavar="KERNEL_DIR")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dvc", type=Path, metavar="FILE", help="a DVC .dvc or dvc.lock file")
    source.add_argument("--manifest", type=Path, metavar="FILE", help="a dataset manifest file")
    parser.add_argument("--dvc-path", metavar="PATH",
                        help="the dataset's path in the DVC file when it records several")
    parser.add_argument("--uri", help="the data version's URI (default: the contract's training_dataset)")
    parser.add_argument("--code", type=Path, metavar="DIR", help="git checkout of the training code")
    parser.add_argument("--check", action="store_true",
                        help="check the recorded dataset digest against --dvc/--manifest; write nothing")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shim.lineage import LineageError, code_from_git, dataset_from_dvc, dataset_from_manifest, record

    if not (args.kernel / "model_metadata.json").is_file():
        raise UsageError(f"{args.kernel}: not a kernel directory (no model_metadata.json)")
    if args.dvc_path and not args.dvc:
        raise UsageError("--dvc-path needs --dvc")
    if not (args.dvc or args.manifest or args.code):
        raise UsageError("give --dvc FILE or --manifest FILE (and/or --code DIR)")
    if args.check and not (args.dvc or args.manifest):
        raise UsageError("--check compares the recorded digest with --dvc FILE or --manifest FILE")
    try:
        lineage = {}
        if args.dvc:
            lineage["dataset"] = dataset_from_dvc(args.dvc, args.dvc_path, args.uri)
        elif args.manifest:
            lineage["dataset"] = dataset_from_manifest(args.manifest, args.uri)
        if args.check:
            return _check(args.kernel, lineage["dataset"], args.dvc or args.manifest)
        if args.code:
            lineage["code"] = code_from_git(args.code)
        path = record(args.kernel, lineage)
    except LineageError as exc:
        raise UsageError(str(exc)) from None
    recorded = ", ".join(f"{key} {value.get('digest') or value.get('commit')}"
                         for key, value in lineage.items())
    print(f"{path}: lineage {recorded} recorded; run `shim validate {args.kernel}`")
    return 0


def _check(kernel: Path, dataset: dict, source: Path) -> int:
    from shim.strict_json import StrictJSONError, loads_strict

    path = kernel / "model_metadata.json"
    try:
        metadata = loads_strict(path.read_bytes())
    except (OSError, StrictJSONError) as exc:
        raise UsageError(f"{path}: cannot be read ({exc})") from None
    lineage = metadata.get("lineage") if isinstance(metadata, dict) else None
    recorded = (lineage or {}).get("dataset", {}).get("digest") if isinstance(lineage, dict) else None
    if recorded is None:
        option = "dvc" if dataset["source"] == "dvc" else "manifest"
        raise CommandFailed(f"{path}: $.lineage.dataset.digest is not recorded; run "
                            f"`shim lineage {kernel} --{option} {source}`")
    if recorded != dataset["digest"]:
        raise CommandFailed(
            f"{path}: $.lineage.dataset.digest is {str(recorded)[:80]} but {source} records "
            f"{dataset['digest']} for {dataset['path']}: the model was trained on other data than this "
            "version; retrain, or record this version if it is the one"
        )
    print(f"{path}: dataset digest {recorded} matches {source}")
    return 0
