"""``shim serve KERNEL_DIR``: serve a kernel over the Open Inference Protocol (KServe v2 REST)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shim.cli.errors import CommandFailed, UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a kernel over the KServe v2 / Triton REST protocol",
        description="Validate the kernel, start the server, load the model, run the golden samples as a "
        "self-check, then report ready. Options can also be set as KERNELSHIM_<OPTION> environment "
        "variables.",
    )
    parser.add_argument("kernel", type=Path, metavar="KERNEL_DIR")
    parser.add_argument("--host", default=None, help="address to bind (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help="port (default 8080)")
    parser.add_argument("--grpc-port", type=int, default=None,
                        help="gRPC port of the Open Inference Protocol (default 8081; 0 turns gRPC off)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--log-format", choices=("json", "text"), default=None)
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=None)
    parser.add_argument("--workers", type=int, default=None, help="server processes (each loads the model)")
    parser.add_argument("--threads", type=int, default=None,
                        help="runtime threads per worker (default: CPU quota)")
    parser.add_argument("--torch-compile", choices=("off", "default", "max-autotune"), default=None,
                        help="torch.export kernels: torch.compile the program's module (default off)")
    parser.add_argument("--max-body-bytes", type=int, default=None,
                        help="largest request body (default 64 MiB)")
    parser.add_argument("--max-queue-size", type=int, default=None,
                        help="requests that may wait (default 1024)")
    parser.add_argument("--policy-dir", type=Path,
                        help="directory whose policy files replace the shipped ones")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shim.contract.validator import validate_kernel
    from shim.policy.loader import PolicyError, load_policies
    from shim.runtimes.device import DeviceError, parse_device
    from shim.server.deployment import DeploymentMismatch, apply_deployment
    from shim.server.main import serve
    from shim.server.settings import settings_from_env

    if not args.kernel.is_dir():
        raise UsageError(f"no such kernel directory: {args.kernel}")
    try:
        settings = settings_from_env({
            "kernel_dir": str(args.kernel), "host": args.host, "port": args.port,
            "grpc_port": args.grpc_port, "device": args.device,
            "log_format": args.log_format, "log_level": args.log_level, "workers": args.workers,
            "threads": args.threads, "torch_compile": args.torch_compile,
            "max_body_bytes": args.max_body_bytes,
            "max_queue_size": args.max_queue_size,
        })
        parse_device(settings.device)
        policies = load_policies(args.policy_dir)
    except (ValueError, DeviceError, PolicyError, OSError) as exc:
        raise UsageError(str(exc)) from None
    report = validate_kernel(args.kernel, policies=policies, load_model=False)
    if not report.ok or report.kernel is None:
        for finding in report.findings:
            print(finding.render(), file=sys.stderr)
        raise CommandFailed(
            f"refusing to serve {args.kernel}: {len(report.errors)} contract error(s), first: "
            f"{report.errors[0].code} {report.errors[0].message}"
        )
    try:
        kernel = apply_deployment(report.kernel, settings)
    except DeploymentMismatch as exc:
        raise CommandFailed(f"refusing to serve {args.kernel}: {exc}") from None
    return serve(settings, kernel)
