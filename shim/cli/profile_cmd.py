"""``shim profile KERNEL_DIR --data FILE...``: write the kernel's training profile (profile.json)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shim.cli.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="write the kernel's training profile from reference data (for drift monitoring)",
        description="Profile reference data (CSV, Parquet, .npy, JSONL of v2 requests) and the model's "
        "outputs on it into the file monitoring.profile names (profile.json). Exit 0: written; "
        "1: findings; 2: usage error.",
    )
    parser.add_argument("kernel", type=Path, metavar="KERNEL_DIR")
    parser.add_argument("--data", nargs="+", type=Path, required=True, metavar="FILE")
    parser.add_argument(
        "--max-sample",
        type=int,
        default=5000,
        help="most values kept per feature before a quantile sketch is used (default 5000)",
    )
    parser.add_argument(
        "--policy-dir", type=Path, help="directory whose policy files replace the shipped ones"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shim.contract.profiling import ProfileBuildError, build_profile
    from shim.policy.loader import PolicyError, load_policies

    if not args.kernel.is_dir():
        raise UsageError(f"no such kernel directory: {args.kernel}")
    if args.max_sample < 10:
        raise UsageError("--max-sample must be at least 10")
    try:
        policy = load_policies(args.policy_dir).artifact
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    try:
        path, document = build_profile(args.kernel, args.data, max_sample=args.max_sample, policy=policy)
    except ProfileBuildError as exc:
        print(str(exc))
        return 1
    print(
        f"wrote {path}: {document['rows']:,} rows, {len(document['features'])} features, "
        f"{len(document['outputs'])} outputs"
    )
    if not json.loads((args.kernel / "model_metadata.json").read_text()).get("monitoring"):
        print(f'add "monitoring": {{"profile": "{path.name}"}} to model_metadata.json to monitor with it')
    return 0
