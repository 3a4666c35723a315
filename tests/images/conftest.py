"""Fixtures for the image tests: a real container engine, a Debian base, and the Level 0/1 images.

No registry can be reached on this project's machines, so nothing is pulled: the Level-0 input is
a minimal Debian root made with debootstrap and imported into the engine (built once, then kept
in the engine as ``localhost/kernelshim/debian-base:bookworm``). The engine is whatever answers
first: ``DOCKER_HOST``, Podman's rootful socket, Docker's default socket; failing that, when run
as root with podman installed, these fixtures start ``podman system service`` themselves.

Where no engine can be had, the container tests skip with the reason, except on CI
(``CI=true``), where they fail: CI must run them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shim.images.builder import BaseBuildOptions, BuiltImage, build_base
from shim.images.context import default_ca_bundle

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEST_CA = FIXTURES / "test-corporate-ca.pem"
EXAMPLE_KERNEL = REPO / "examples" / "kernels" / "iris-classifier"

PODMAN_SOCKET_PATH = Path("/run/podman/podman.sock")
PODMAN_SOCKET = f"unix://{PODMAN_SOCKET_PATH}"
CANDIDATE_HOSTS = (PODMAN_SOCKET, "unix:///var/run/docker.sock")
#: runc instead of crun (which fails on this machine's cgroups and setrlimit), no default ulimits.
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
CONTAINERS_CONF_TEXT = '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n'

DEBIAN_BASE = "localhost/kernelshim/debian-base:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = "python3,python3-venv,ca-certificates"
LEVEL0_TAG = "localhost/kernelshim-test/level0-base:bookworm"
LEVEL1_TAG = "localhost/kernelshim-test/level1-runtime:cpu"
TEST_TAG_PREFIX = "localhost/kernelshim-test/"
#: This machine reaches package indexes only from the host's network namespace.
BUILD_NETWORK = os.environ.get("KERNELSHIM_BUILD_NETWORK", "host")
LOCK_FILE = Path(tempfile.gettempdir()) / "kernelshim-image-tests.lock"


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; on CI (CI=true) fail instead, because CI must run these tests."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, so the container tests must run, but: {reason}", pytrace=False)
    pytest.skip(reason)


def _client_for(base_url: str):
    from shim.images.engine import EngineUnavailable, connect

    try:
        return connect(base_url)
    except EngineUnavailable:
        return None


def _start_podman_service(log_path: Path) -> subprocess.Popen[bytes]:
    if not CONTAINERS_CONF.exists():  # never overwrite a developer's own configuration
        CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
        CONTAINERS_CONF.write_text(CONTAINERS_CONF_TEXT, encoding="utf-8")
    PODMAN_SOCKET_PATH.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            ["podman", "system", "service", "--time=0", PODMAN_SOCKET],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )


def _restore_docker_host(previous: str | None) -> None:
    if previous is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = previous


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A docker SDK client whose engine answers; starts Podman's service when it has to."""
    pytest.importorskip("docker", reason="the docker SDK is not installed (pip install 'kernelshim[images]')")
    hosts = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else []
    hosts += [h for h in CANDIDATE_HOSTS if h not in hosts]
    previous = os.environ.get("DOCKER_HOST")
    for host in hosts:
        client = _client_for(host)
        if client is not None:
            os.environ["DOCKER_HOST"] = host  # for the `shim image` subprocesses
            yield client
            client.close()
            _restore_docker_host(previous)
            return
    if os.geteuid() != 0 or shutil.which("podman") is None:
        skip_or_fail(
            f"no container engine answers at {', '.join(hosts)}, and podman cannot be started here "
            f"({'not root' if os.geteuid() != 0 else 'podman is not installed'}; "
            "`bash .ci/install-containers.sh` installs it)"
        )
    log_path = tmp_path_factory.mktemp("podman") / "service.log"
    service = _start_podman_service(log_path)
    client = None
    deadline = time.monotonic() + 30
    while client is None and time.monotonic() < deadline and service.poll() is None:
        time.sleep(0.3)
        client = _client_for(PODMAN_SOCKET)
    if client is None:
        service.terminate()
        log = log_path.read_text(errors="replace")[-800:]
        skip_or_fail(f"podman system service did not answer within 30 s: {log}")
    os.environ["DOCKER_HOST"] = PODMAN_SOCKET
    try:
        yield client
    finally:
        client.close()
        _restore_docker_host(previous)
        service.terminate()
        try:
            service.wait(timeout=10)
        except subprocess.TimeoutExpired:
            service.kill()


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """One test session at a time builds the shared base (other helpers share this machine)."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _unmount_below(root: Path) -> None:
    """debootstrap mounts /proc and /sys inside the root; a failed run can leave them mounted."""
    with open("/proc/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(str(root) + "/")]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def _debootstrap_base(engine: object, workdir: Path) -> None:
    from docker.errors import ImageNotFound

    try:
        engine.images.get(DEBIAN_BASE)
        return
    except ImageNotFound:
        pass
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        skip_or_fail(f"{DEBIAN_BASE} is missing and debootstrap (as root) is not available to make it")
    root = workdir / "rootfs"
    mirror = os.environ.get("KERNELSHIM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    command = [
        "debootstrap", "--variant=minbase", f"--include={DEBIAN_PACKAGES}", DEBIAN_SUITE, str(root), mirror,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        if result.returncode != 0:
            skip_or_fail(f"debootstrap failed: {(result.stdout + result.stderr)[-1500:]}")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        archive = workdir / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(archive), "."], check=True)
        # Tag by the id the engine reports: Podman's compat import ignores the tag parameter.
        reply = engine.api.import_image_from_file(str(archive))
        image_id = json.loads(reply.strip().splitlines()[-1])["status"].strip()
        repository, tag = DEBIAN_BASE.rsplit(":", 1)
        engine.images.get(image_id).tag(repository, tag)
        engine.images.get(DEBIAN_BASE)
    finally:
        _unmount_below(root)


@pytest.fixture(scope="session")
def debian_base(engine: object, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``localhost/kernelshim/debian-base:bookworm``: debootstrapped once, then kept in the engine."""
    with _exclusive(LOCK_FILE):
        _debootstrap_base(engine, tmp_path_factory.mktemp("debian"))
    return DEBIAN_BASE


@pytest.fixture(scope="session")
def ca_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This machine's CA bundle (package downloads go through a TLS-intercepting gateway) plus the
    test's own corporate CA, whose presence in the image proves the CA option works."""
    bundle = tmp_path_factory.mktemp("ca") / "bundle.pem"
    machine = default_ca_bundle()
    parts = [machine.read_bytes()] if machine else []
    bundle.write_bytes(b"\n".join([*parts, TEST_CA.read_bytes()]))
    return bundle


#: Seconds each build took in this session, printed at the end of the run (warm or cold cache).
BUILD_SECONDS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if BUILD_SECONDS:
        timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in BUILD_SECONDS.items())
        terminalreporter.write_line(f"kernelshim image builds: {timings}")


@pytest.fixture(scope="session")
def level0(engine: object, debian_base: str, ca_bundle: Path) -> BuiltImage:
    options = BaseBuildOptions(
        level=0, tag=LEVEL0_TAG, base_image=debian_base, ca_bundles=(ca_bundle,), network_mode=BUILD_NETWORK,
    )
    with _exclusive(LOCK_FILE):
        built = build_base(engine, options)
    BUILD_SECONDS["level 0"] = built.seconds
    return built


@pytest.fixture(scope="session")
def level1(engine: object, level0: BuiltImage) -> BuiltImage:
    """The CPU runtime without torch: PyPI's torch is a multi-GB CUDA build and PyTorch's CPU index
    is out of reach here."""
    options = BaseBuildOptions(
        level=1, tag=LEVEL1_TAG, base_image=level0.tag, variant="cpu", install_torch=False,
        source=REPO, network_mode=BUILD_NETWORK,
    )
    with _exclusive(LOCK_FILE):
        built = build_base(engine, options)
    BUILD_SECONDS["level 1"] = built.seconds
    return built


@pytest.fixture(scope="session")
def built_test_images(engine: object) -> Iterator[list[str]]:
    """Tags of the Level-2 images tests build; removed when the session ends (L0/L1 stay cached)."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        with contextlib.suppress(Exception):
            engine.images.remove(tag, force=True)
