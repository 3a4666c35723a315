"""Build (and push) the three image levels through any Docker-API engine.

``build_base`` builds the platform's Level 0 (hardened base) or Level 1 (frozen runtime);
``build_kernel`` turns one kernel into a thin Level-2 image on a Level-1 runtime. Each assembles
its context (``shim.images.context``), streams the engine's build output live to ``progress``,
and returns the image id and labels. Failures raise ``BuildFailed`` carrying the end of the build
output, so the reason (a validator finding, a pip error) is in the message, not only in the log.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shim import __version__
from shim.images.context import (
    BuildContext,
    WheelBuild,
    images_dir,
    kernelshim_source,
    level0_context,
    level1_context,
    level2_context,
)
from shim.images.digest import kernel_digest
from shim.images.freeze import FrozenFile, frozen_files, stale_frozen_files

if TYPE_CHECKING:
    import docker

    from shim.spec.kernel import Kernel

Progress = Callable[[str], None]
LABEL_PREFIX = "dev.kernelshim"
LEVEL_LABEL = f"{LABEL_PREFIX}.level"
KERNEL_NAME_LABEL = f"{LABEL_PREFIX}.kernel.name"
KERNEL_VERSION_LABEL = f"{LABEL_PREFIX}.kernel.version"
KERNEL_DIGEST_LABEL = f"{LABEL_PREFIX}.kernel.digest"
TORCH_LABEL = f"{LABEL_PREFIX}.runtime.torch"
#: frameworks whose kernels need torch in the runtime image, by the name messages use
_TORCH_FRAMEWORKS = {"torchscript": "TorchScript", "torch_export": "torch.export"}
VARIANT_LABEL = f"{LABEL_PREFIX}.runtime.variant"
LEVEL0_DEFAULT_TAG = "localhost/kernelshim/level0-base:latest"
VARIANTS = ("cpu", "gpu")
#: How much of the build output a failure message repeats.
FAILURE_TAIL_LINES = 40


def level1_default_tag(variant: str) -> str:
    return f"localhost/kernelshim/level1-runtime:{variant}"


def kernel_default_tag(kernel: Kernel) -> str:
    return f"localhost/kernelshim/{kernel.name}:{kernel.version}"


class BuildFailed(Exception):
    """The engine refused or failed the build (or push); ``output`` is the build log's tail."""

    def __init__(self, message: str, output: Iterable[str] = ()) -> None:
        self.output = list(output)
        tail = "".join(self.output[-FAILURE_TAIL_LINES:]).rstrip()
        super().__init__(f"{message}\n--- end of the engine output ---\n{tail}" if tail else message)
        self.reason = message


@dataclass(frozen=True)
class BuiltImage:
    image_id: str
    tag: str
    labels: dict[str, str]
    seconds: float
    output: list[str] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class BaseBuildOptions:
    """What `shim image build-base` takes; ``None`` means the Dockerfile's or builder's default."""

    level: int
    tag: str | None = None
    base_image: str | None = None
    # Level 0
    ca_bundles: tuple[Path, ...] = ()
    proxies: Mapping[str, str] = field(default_factory=dict)
    # Level 1
    variant: str = "cpu"
    install_torch: bool = True
    torch_index_url: str | None = None
    wheel: Path | None = None
    source: Path | None = None
    policy_dir: Path | None = None
    # both
    images: Path | None = None
    network_mode: str | None = None
    nocache: bool = False
    push: bool = False
    tls_verify: bool = True


def _silent(_: str) -> None:
    pass


def run_build(
    client: docker.DockerClient,
    context: BuildContext,
    tag: str,
    buildargs: Mapping[str, str],
    *,
    network_mode: str | None = None,
    nocache: bool = False,
    progress: Progress = _silent,
) -> BuiltImage:
    """Send ``context`` to the engine, stream its output to ``progress``, return the tagged image."""
    from docker.errors import APIError, DockerException, ImageNotFound

    output: list[str] = []
    error: str | None = None
    started = time.monotonic()
    with tempfile.TemporaryFile(prefix="kernelshim-context-") as archive:
        context.write_tar(archive)
        try:
            stream = client.api.build(
                fileobj=archive, custom_context=True, dockerfile=context.dockerfile, tag=tag,
                buildargs=dict(buildargs), rm=True, forcerm=True, pull=False, nocache=nocache,
                network_mode=network_mode, decode=True,
            )
            for chunk in stream:
                text = _chunk_text(chunk)
                if text:
                    output.append(text)
                    progress(text)
                if chunk.get("error"):
                    error = str(chunk.get("errorDetail", {}).get("message") or chunk["error"]).strip()
        except APIError as exc:
            error = _api_error_text(exc)
        except DockerException as exc:  # refused by the SDK itself, e.g. an invalid tag
            error = str(exc)
        except OSError as exc:  # requests' ConnectionError included
            error = f"lost the connection to the container engine: {exc}"
    if error:
        raise BuildFailed(f"building {tag} failed: {error}", output)
    try:
        image = client.images.get(tag)
    except ImageNotFound:
        raise BuildFailed(f"building {tag} reported success, but the engine lacks it", output) from None
    return BuiltImage(
        image_id=image.id, tag=tag, labels=dict(image.labels or {}),
        seconds=time.monotonic() - started, output=output,
    )


def _chunk_text(chunk: Mapping[str, Any]) -> str:
    if "stream" in chunk:
        return str(chunk["stream"])
    if chunk.get("status") and not chunk.get("progressDetail"):
        prefix = f"{chunk['id']}: " if chunk.get("id") else ""
        return f"{prefix}{chunk['status']}\n"
    if chunk.get("error"):
        return f"{chunk['error']}\n"
    return ""


def _api_error_text(exc: Any) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


def push_image(
    client: docker.DockerClient, ref: str, progress: Progress = _silent, *, tls_verify: bool = True
) -> list[str]:
    """Push ``ref`` to its registry, streaming the engine's status lines; ``BuildFailed`` on error.

    ``tls_verify=False`` pushes over plain HTTP / unverified TLS (a registry on localhost in a test,
    an internal mirror): Podman's API takes it as the ``tlsVerify`` query parameter, which the docker
    SDK does not expose; Docker ignores the parameter (it trusts loopback registries by itself).
    Returns the engine's status lines (the last names the pushed digest).
    """
    from docker.errors import APIError, DockerException
    from docker.utils import parse_repository_tag

    repository, tag = parse_repository_tag(ref)
    output: list[str] = []
    try:
        if tls_verify:
            stream = client.api.push(repository, tag=tag or "latest", stream=True, decode=True)
        else:
            api = client.api
            response = api._post(  # the SDK's own request path, plus the one parameter it lacks
                api._url("/images/{0}/push", repository),
                params={"tag": tag or "latest", "tlsVerify": "false"},
                headers={"X-Registry-Auth": "e30="},  # base64 "{}": no credentials
                stream=True,
            )
            api._raise_for_status(response)
            stream = api._stream_helper(response, decode=True)
        for chunk in stream:
            text = _chunk_text(chunk)
            if text:
                output.append(text)
                progress(text)
            if chunk.get("error"):
                raise BuildFailed(f"pushing {ref} failed: {str(chunk['error']).strip()}", output)
    except APIError as exc:
        raise BuildFailed(f"pushing {ref} failed: {_api_error_text(exc)}", output) from None
    except DockerException as exc:
        raise BuildFailed(f"pushing {ref} failed: {exc}", output) from None
    except OSError as exc:
        raise BuildFailed(
            f"pushing {ref} failed: lost the connection to the container engine: {exc}", output
        ) from None
    return output


# -- Level 0 and 1 ----------------------------------------------------------------------------


def build_base(
    client: docker.DockerClient, options: BaseBuildOptions, progress: Progress = _silent
) -> BuiltImage:
    """Build the platform's Level 0 or Level 1 image."""
    images = images_dir(options.images)
    if options.level == 0:
        built = _build_level0(client, options, images, progress)
    elif options.level == 1:
        built = _build_level1(client, options, images, progress)
    else:
        raise ValueError(f"level must be 0 or 1, not {options.level}")
    if options.push:
        push_image(client, built.tag, progress, tls_verify=options.tls_verify)
    return built


def _build_level0(
    client: docker.DockerClient, options: BaseBuildOptions, images: Path, progress: Progress
) -> BuiltImage:
    context = level0_context(images, options.ca_bundles)
    buildargs = {key: value for key, value in options.proxies.items() if value}
    if options.base_image:
        buildargs["BASE_IMAGE"] = options.base_image
    return run_build(
        client, context, options.tag or LEVEL0_DEFAULT_TAG, buildargs,
        network_mode=options.network_mode, nocache=options.nocache, progress=progress,
    )


def frozen_for_policy(policy_dir: Path | None) -> list[FrozenFile]:
    """The frozen requirement files the effective dependency policy generates."""
    from shim.policy.loader import load_policies

    return frozen_files(load_policies(policy_dir).dependency["runtime_packages"])


def _build_level1(
    client: docker.DockerClient, options: BaseBuildOptions, images: Path, progress: Progress
) -> BuiltImage:
    if options.variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {options.variant!r}")
    runtime_dir = images / "level1-runtime"
    expected = frozen_for_policy(options.policy_dir)
    stale = stale_frozen_files(expected, runtime_dir)
    if stale:
        raise BuildFailed(
            f"{', '.join(str(p) for p in stale)} disagree(s) with the dependency policy's runtime_packages; "
            "run `shim image freeze` (with the same --policy-dir) and commit the result"
        )
    frozen_digest = hashlib.sha256("".join(item.text for item in expected).encode()).hexdigest()
    buildargs = {key: value for key, value in options.proxies.items() if value}
    buildargs.update({
        "VARIANT": options.variant,
        "INSTALL_TORCH": "1" if options.install_torch else "0",
        "KERNELSHIM_VERSION": __version__,
        "FROZEN_DIGEST": f"sha256:{frozen_digest}",
        "BASE_IMAGE": options.base_image or LEVEL0_DEFAULT_TAG,
    })
    if options.torch_index_url:
        buildargs["TORCH_INDEX_URL"] = options.torch_index_url
    tag = options.tag or level1_default_tag(options.variant)
    if options.wheel is not None:
        return _build_level1_with_wheel(client, options, images, options.wheel, tag, buildargs, progress)
    source = options.source or kernelshim_source()
    if source is None:
        raise BuildFailed(
            "this kernelshim is not installed from a checkout, so there is no source to build a wheel from; "
            "pass --kernelshim-wheel FILE or --source DIR"
        )
    progress(f"building the kernelshim wheel from {source}\n")
    with WheelBuild(Path(source)) as wheel:
        return _build_level1_with_wheel(client, options, images, wheel, tag, buildargs, progress)


def _build_level1_with_wheel(
    client: docker.DockerClient, options: BaseBuildOptions, images: Path, wheel: Path, tag: str,
    buildargs: Mapping[str, str], progress: Progress,
) -> BuiltImage:
    context = level1_context(images, wheel)
    return run_build(
        client, context, tag, buildargs, network_mode=options.network_mode, nocache=options.nocache,
        progress=progress,
    )


# -- Level 2 ----------------------------------------------------------------------------------


class RuntimeMismatch(Exception):
    """The runtime image cannot serve this kernel (wrong level, or no torch for a TorchScript kernel)."""


def check_runtime_image(
    client: docker.DockerClient, runtime_image: str, kernel: Kernel, progress: Progress = _silent
) -> None:
    """Refuse, before building, a runtime that is not Level 1 or lacks the kernel's framework.

    An image the engine does not have yet is left to the build (which pulls it); its own
    validator step still catches a framework it cannot load.
    """
    from docker.errors import APIError, ImageNotFound

    try:
        labels = client.images.get(runtime_image).labels or {}
    except ImageNotFound:
        progress(f"runtime image {runtime_image} is not in the engine yet; the build will pull it\n")
        return
    except APIError as exc:
        raise RuntimeMismatch(f"runtime image {runtime_image!r}: {_api_error_text(exc)}") from None
    level = labels.get(LEVEL_LABEL)
    if level is not None and level != "1":
        raise RuntimeMismatch(
            f"{runtime_image} is a level-{level} image; --runtime-image must be a Level-1 runtime "
            "(built by `shim image build-base --level 1`)"
        )
    if kernel.framework in _TORCH_FRAMEWORKS and labels.get(TORCH_LABEL) == "0":
        raise RuntimeMismatch(
            f"kernel {kernel.name} is {_TORCH_FRAMEWORKS[kernel.framework]}, but runtime {runtime_image} "
            "was built without torch; "
            "use a runtime built with torch (`shim image build-base --level 1 --torch`)"
        )


def build_kernel(
    client: docker.DockerClient,
    kernel_dir: Path,
    runtime_image: str,
    *,
    tag: str | None = None,
    push: bool = False,
    images: Path | None = None,
    proxies: Mapping[str, str] | None = None,
    network_mode: str | None = None,
    nocache: bool = False,
    progress: Progress = _silent,
    tls_verify: bool = True,
) -> BuiltImage:
    """Build the Level-2 image of the kernel at ``kernel_dir`` on ``runtime_image``.

    Raises ``shim.contract.kernel.KernelError`` when the metadata cannot even be read (the image
    could not be labelled); every other contract finding comes from `shim validate` in the build.
    """
    from shim.contract.kernel import read_kernel

    kernel = read_kernel(Path(kernel_dir))
    check_runtime_image(client, runtime_image, kernel, progress)
    digest = kernel_digest(kernel.root)
    context = level2_context(images_dir(images), kernel.root)
    buildargs = {key: value for key, value in (proxies or {}).items() if value}
    buildargs |= {
        "RUNTIME_IMAGE": runtime_image,
        "KERNEL_NAME": kernel.name,
        "KERNEL_VERSION": kernel.version,
        "KERNEL_DIGEST": digest,
    }
    target = tag or kernel_default_tag(kernel)
    progress(f"kernel {kernel.name} {kernel.version}, content {digest}\n")
    built = run_build(
        client, context, target, buildargs, network_mode=network_mode, nocache=nocache, progress=progress
    )
    if push:
        push_image(client, target, progress, tls_verify=tls_verify)
    return built
