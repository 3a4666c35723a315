"""Connect to a container engine through the Docker API (Docker, or Podman's compatible socket).

The engine is whatever ``DOCKER_HOST`` points at (the docker SDK's own rules: ``DOCKER_HOST``,
``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``; the default socket when unset). When nothing answers,
the error says where it looked and how to start an engine, instead of an SDK traceback.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker

#: Builds stream for minutes (a Level-1 pip install); the SDK's 60 s default read timeout is too short.
DEFAULT_TIMEOUT_S = 3600
PODMAN_SOCKET = "unix:///run/podman/podman.sock"
_HOW_TO_START = (
    "start Docker, or Podman's Docker-compatible service "
    f"(`podman system service --time=0 {PODMAN_SOCKET} &`) and `export DOCKER_HOST={PODMAN_SOCKET}`"
)


class EngineUnavailable(Exception):
    """No container engine can be reached (or the docker SDK is not installed)."""


def describe_engine_location(base_url: str | None = None) -> str:
    if base_url:
        return base_url
    if os.environ.get("DOCKER_HOST"):
        return f"DOCKER_HOST={os.environ['DOCKER_HOST']}"
    return "the default socket unix:///var/run/docker.sock (DOCKER_HOST is not set)"


def connect(base_url: str | None = None, timeout: int = DEFAULT_TIMEOUT_S) -> docker.DockerClient:
    """A client whose engine has answered a ping; ``EngineUnavailable`` otherwise."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        raise EngineUnavailable(
            "the docker SDK is not installed; install it with `pip install 'kernelshim[images]'`"
        ) from None
    where = describe_engine_location(base_url)
    try:
        if base_url:
            client = docker.DockerClient(base_url=base_url, version="auto", timeout=timeout)
        else:
            client = docker.from_env(version="auto", timeout=timeout)
        client.ping()
    except (DockerException, OSError) as exc:
        raise EngineUnavailable(
            f"no container engine answers at {where} ({_reason(exc)}); {_HOW_TO_START}"
        ) from None
    return client


def engine_name(client: docker.DockerClient) -> str:
    """"Podman 4.3.1" or "Docker Engine 27.0.3": for log lines and error messages."""
    try:
        version = client.version()
    except Exception:  # informational only
        return "unknown engine"
    components = {c.get("Name", ""): c.get("Version", "") for c in version.get("Components") or []}
    for name, component_version in components.items():
        if "podman" in name.lower():
            return f"Podman {component_version}"
    return f"Docker Engine {version.get('Version', '?')}"


def _reason(exc: BaseException) -> str:
    """The innermost readable cause: "No such file or directory", "Connection refused"..."""
    text = str(exc)
    for marker in ("FileNotFoundError", "ConnectionRefusedError", "PermissionError"):
        if marker in text:
            return {
                "FileNotFoundError": "socket not found",
                "ConnectionRefusedError": "connection refused",
                "PermissionError": "permission denied on the socket",
            }[marker]
    return text.splitlines()[0] if text else type(exc).__name__
