"""``shim image``: turn a kernel into a Level-2 image, build the platform's Level 0/1, freeze pins.

- ``shim image build KERNEL_DIR --runtime-image REF [--tag REF] [--push]``: the data scientist's
  (or CI's) command; the kernel's contract is validated inside the build.
- ``shim image build-base --level 0|1 ...``: the platform team's images.
- ``shim image freeze [--check]``: regenerate (or verify) Level 1's requirement files from the
  dependency policy.

Builds go to whatever engine ``DOCKER_HOST`` points at; the engine's output streams to stderr,
the result (tag, image id, labels) goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from shim.cli.errors import CommandFailed, UsageError

PROXY_ENV = {"http_proxy": "--http-proxy", "https_proxy": "--https-proxy", "no_proxy": "--no-proxy"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "image",
        help="build container images: a kernel's Level-2 image, the platform's Level 0/1",
        description="Build the golden image hierarchy with the engine DOCKER_HOST points at "
        "(Docker, or Podman's Docker-compatible socket).",
    )
    commands = parser.add_subparsers(dest="image_command", metavar="IMAGE_COMMAND")
    parser.set_defaults(handler=lambda _args: _missing_subcommand(parser))

    build = commands.add_parser(
        "build",
        help="build a kernel's Level-2 image on a Level-1 runtime",
        description="Copy one kernel onto a Level-1 runtime image, install its requirements.txt, run "
        "`shim validate` inside the build (an invalid kernel fails it) and label the image with the "
        "kernel's name, version and content digest.",
    )
    build.add_argument("kernel", type=Path, metavar="KERNEL_DIR")
    build.add_argument("--runtime-image", required=True, metavar="REF", help="the Level-1 image to build on")
    build.add_argument("--tag", metavar="REF", help="image reference (default localhost/kernelshim/NAME:VER)")
    build.add_argument("--push", action="store_true", help="push the tag to its registry after building")
    build.add_argument(
        "--tls-verify", action=argparse.BooleanOptionalAction, default=True,
        help="--no-tls-verify pushes over plain HTTP (a registry on localhost or an internal mirror)",
    )
    _add_common(build)
    build.set_defaults(handler=run_build)

    base = commands.add_parser(
        "build-base",
        help="build the platform's Level-0 base or Level-1 runtime image",
        description="Level 0: hardened base (non-root user, Python venv, corporate CA trust). "
        "Level 1: the frozen ML runtime and kernelshim itself, on a Level-0 image.",
    )
    base.add_argument("--level", type=int, choices=(0, 1), required=True)
    base.add_argument(
        "--tag", metavar="REF",
        help="image reference (default localhost/kernelshim/level0-base:latest "
        "or localhost/kernelshim/level1-runtime:VARIANT)",
    )
    base.add_argument(
        "--base-image", metavar="REF",
        help="level 0: the OS image (default: the Dockerfile's CUDA runtime image); "
        "level 1: the Level-0 image (default localhost/kernelshim/level0-base:latest)",
    )
    base.add_argument(
        "--ca-bundle", type=Path, metavar="FILE", action="append",
        help="level 0: PEM file of CA certificates to trust (e.g. a TLS-intercepting proxy's), repeatable; "
        "default: the file in PIP_CERT, SSL_CERT_FILE or REQUESTS_CA_BUNDLE when set",
    )
    base.add_argument("--no-ca-bundle", action="store_true", help="level 0: trust only the base image's CAs")
    base.add_argument("--variant", choices=("cpu", "gpu"), default="cpu",
                      help="level 1: onnxruntime (cpu) or onnxruntime-gpu (gpu)")
    base.add_argument(
        "--torch", action=argparse.BooleanOptionalAction, default=True,
        help="level 1: install the frozen torch (default yes; --no-torch serves ONNX kernels only)",
    )
    base.add_argument(
        "--torch-index-url", metavar="URL",
        help="level 1: where torch comes from (default: PyTorch's CPU index for cpu, PyPI for gpu)",
    )
    base.add_argument("--kernelshim-wheel", type=Path, metavar="FILE",
                      help="level 1: install this kernelshim wheel instead of building one from the checkout")
    base.add_argument(
        "--source", type=Path, metavar="DIR", help="level 1: kernelshim checkout to build the wheel from"
    )
    base.add_argument("--policy-dir", type=Path, metavar="DIR",
                      help="level 1: directory whose dependency_policy.yaml replaces the shipped one")
    base.add_argument("--push", action="store_true", help="push the tag to its registry after building")
    _add_common(base)
    base.set_defaults(handler=run_build_base)

    freeze = commands.add_parser(
        "freeze",
        help="write Level 1's requirements-frozen*.txt from the dependency policy",
        description="Generate images/level1-runtime/requirements-frozen*.txt from runtime_packages in the "
        "dependency policy. With --check, change nothing and exit 1 if the files are out of date.",
    )
    freeze.add_argument("--check", action="store_true", help="only report whether the files are up to date")
    freeze.add_argument("--policy-dir", type=Path, metavar="DIR",
                        help="directory whose dependency_policy.yaml replaces the shipped one")
    freeze.add_argument("--output-dir", type=Path, metavar="DIR",
                        help="where the files live (default: the images/level1-runtime directory)")
    freeze.set_defaults(handler=run_freeze)


def _add_common(parser: argparse.ArgumentParser) -> None:
    for variable, flag in PROXY_ENV.items():
        parser.add_argument(
            flag, dest=variable, metavar="VALUE",
            help=f"build-time {variable} (default ${variable.upper()} or ${variable}); not kept in the image",
        )
    parser.add_argument(
        "--network", metavar="MODE", default=os.environ.get("KERNELSHIM_BUILD_NETWORK"),
        help="network for RUN steps, e.g. host (default: $KERNELSHIM_BUILD_NETWORK, else the engine's)",
    )
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    parser.add_argument("--images-dir", type=Path, metavar="DIR",
                        help="use the Dockerfiles in DIR (level0-base/, level1-runtime/, level2-kernel/) "
                        "instead of kernelshim's")
    parser.add_argument("--quiet", action="store_true", help="do not stream the build output")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _progress(args: argparse.Namespace):
    if args.quiet:
        return lambda _text: None

    def write(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    return write


def _connect():
    from shim.images.engine import EngineUnavailable, connect

    try:
        return connect()
    except EngineUnavailable as exc:
        raise CommandFailed(str(exc)) from None


def _report(args: argparse.Namespace, built, level: int) -> int:
    if args.json:
        print(json.dumps({
            "tag": built.tag, "image_id": built.image_id, "level": level,
            "labels": built.labels, "seconds": round(built.seconds, 1),
        }, indent=2, sort_keys=True))
    else:
        print(f"built level-{level} image {built.tag} ({built.image_id}) in {built.seconds:.1f} s")
        for key in sorted(built.labels):
            if key.startswith("dev.kernelshim."):
                print(f"  {key}={built.labels[key]}")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from shim.contract.kernel import KernelError, read_kernel
    from shim.images.builder import BuildFailed, RuntimeMismatch, build_kernel
    from shim.images.context import ContextError
    from shim.images.digest import KernelContentError

    if not args.kernel.is_dir():
        raise UsageError(f"no such kernel directory: {args.kernel}")
    try:  # before any engine work: the image's name and labels come from the metadata
        read_kernel(args.kernel)
    except KernelError as exc:
        for finding in exc.findings:
            print(finding.render(), file=sys.stderr)
        raise CommandFailed(
            f"{args.kernel}: cannot build an image of a kernel whose metadata does not satisfy the contract "
            f"({len(exc.findings)} finding(s) above; `shim validate {args.kernel}` shows every check)"
        ) from None
    client = _connect()
    try:
        built = build_kernel(
            client, args.kernel, args.runtime_image, tag=args.tag, push=args.push, images=args.images_dir,
            proxies=_proxies(args), network_mode=args.network, nocache=args.no_cache,
            progress=_progress(args), tls_verify=args.tls_verify,
        )
    except (KernelContentError, ContextError, RuntimeMismatch) as exc:
        raise CommandFailed(str(exc)) from None
    except BuildFailed as exc:
        # The output was streamed already; repeat it only when it was not.
        raise CommandFailed(str(exc) if args.quiet else exc.reason) from None
    finally:
        client.close()
    return _report(args, built, 2)


def _proxies(args: argparse.Namespace) -> dict[str, str]:
    proxies = {}
    for variable in PROXY_ENV:
        value = getattr(args, variable)
        if value is None:
            value = os.environ.get(variable.upper()) or os.environ.get(variable)
        if value:
            proxies[variable] = value
            proxies[variable.upper()] = value
    return proxies


def run_build_base(args: argparse.Namespace) -> int:
    from shim.images.builder import BaseBuildOptions, BuildFailed, build_base
    from shim.images.context import ContextError, default_ca_bundle, split_ca_bundle
    from shim.images.freeze import FreezeError
    from shim.policy.loader import PolicyError

    if args.level == 1 and (args.ca_bundle or args.no_ca_bundle):
        raise UsageError("--ca-bundle/--no-ca-bundle belong to --level 0 (Level 1 inherits its trust store)")
    if args.level == 0 and (args.kernelshim_wheel or args.source or args.policy_dir or args.torch_index_url):
        raise UsageError("--kernelshim-wheel, --source, --policy-dir, --torch-index-url belong to --level 1")
    ca_bundles: tuple[Path, ...] = ()
    if args.level == 0 and not args.no_ca_bundle:
        for bundle in args.ca_bundle or ():
            if not bundle.is_file():
                raise UsageError(f"--ca-bundle: no such file: {bundle}")
        default = default_ca_bundle()
        ca_bundles = tuple(args.ca_bundle or ([default] if default else []))
        try:  # before any engine work: a bad bundle is a usage problem, found in milliseconds
            for bundle in ca_bundles:
                split_ca_bundle(bundle)
        except ContextError as exc:
            raise UsageError(str(exc)) from None
    for option, path in (("--kernelshim-wheel", args.kernelshim_wheel), ("--source", args.source)):
        if path is not None and not path.exists():
            raise UsageError(f"{option}: no such file or directory: {path}")
    options = BaseBuildOptions(
        level=args.level, tag=args.tag, base_image=args.base_image, ca_bundles=ca_bundles,
        proxies=_proxies(args),
        variant=args.variant, install_torch=args.torch, torch_index_url=args.torch_index_url,
        wheel=args.kernelshim_wheel, source=args.source, policy_dir=args.policy_dir, images=args.images_dir,
        network_mode=args.network, nocache=args.no_cache, push=args.push,
    )
    if ca_bundles and not args.quiet:
        print(f"trusting the CA certificates in {', '.join(map(str, ca_bundles))}", file=sys.stderr)
    client = _connect()
    try:
        built = build_base(client, options, progress=_progress(args))
    except (ContextError, FreezeError, PolicyError) as exc:
        raise CommandFailed(str(exc)) from None
    except BuildFailed as exc:
        raise CommandFailed(str(exc) if args.quiet else exc.reason) from None
    finally:
        client.close()
    return _report(args, built, args.level)


def run_freeze(args: argparse.Namespace) -> int:
    from shim.images.builder import frozen_for_policy
    from shim.images.context import ContextError, images_dir
    from shim.images.freeze import FreezeError, stale_frozen_files, write_frozen_files
    from shim.policy.loader import PolicyError

    try:
        files = frozen_for_policy(args.policy_dir)
        directory = args.output_dir or images_dir() / "level1-runtime"
    except (PolicyError, FreezeError, ContextError) as exc:
        raise CommandFailed(str(exc)) from None
    if not directory.is_dir():
        raise UsageError(f"--output-dir: no such directory: {directory}")
    if args.check:
        stale = stale_frozen_files(files, directory)
        for path in stale:
            print(f"{path}: out of date with the dependency policy's runtime_packages", file=sys.stderr)
        if stale:
            print("run `shim image freeze` and commit the result", file=sys.stderr)
            return 1
        print(f"{directory}: {len(files)} frozen requirement file(s) match the dependency policy")
        return 0
    changed = write_frozen_files(files, directory)
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print(f"{directory}: already up to date")
    return 0
