"""Resolve the digest a registry stores for a pushed tag (the Docker Registry HTTP API v2).

A tag can move; the deploy pins the image by the digest the registry itself reports for the
manifest it received (``Docker-Content-Digest`` on ``HEAD /v2/<repository>/manifests/<tag>``), not
by a local image id, which differs from it. When the registry cannot be asked (it needs credentials
the engine holds, e.g. ECR), the digest the engine reported at the end of its push is used, and
the result says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_PUSHED = re.compile(r"digest: (sha256:[a-f0-9]{64})")
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
TIMEOUT_S = 30


class DigestUnresolved(Exception):
    """Neither the registry nor the engine's push output names the pushed digest."""


@dataclass(frozen=True)
class ResolvedDigest:
    digest: str
    #: "registry" (asked the registry) or "engine" (the push output's digest line).
    source: str
    note: str = ""


def split_reference(ref: str) -> tuple[str, str, str]:
    """``localhost:5000/models/iris:0.1.0`` -> ("localhost:5000", "models/iris", "0.1.0")."""
    from docker.utils import parse_repository_tag

    repository, tag = parse_repository_tag(ref)
    registry, _, path = repository.partition("/")
    if not path or not ("." in registry or ":" in registry or registry == "localhost"):
        raise DigestUnresolved(f"{ref!r} names no registry host (expected REGISTRY/REPOSITORY:TAG)")
    return registry, path, tag or "latest"


def pushed_digest(push_output: Sequence[str]) -> str | None:
    """The digest in the engine's last "TAG: digest: sha256:... size: N" line, if any."""
    for line in reversed(push_output):
        match = _PUSHED.search(line)
        if match:
            return match[1]
    return None


def resolve_digest(ref: str, push_output: Sequence[str] = (), *, tls_verify: bool = True) -> ResolvedDigest:
    """The digest the registry holds for ``ref``'s tag."""
    import requests

    registry, repository, tag = split_reference(ref)
    scheme = "https" if tls_verify else "http"
    url = f"{scheme}://{registry}/v2/{repository}/manifests/{tag}"
    reason = ""
    try:
        response = requests.head(
            url, headers={"Accept": MANIFEST_TYPES}, timeout=TIMEOUT_S, allow_redirects=True
        )
        header = response.headers.get("Docker-Content-Digest", "")
        if response.status_code == 200 and _DIGEST.fullmatch(header):
            return ResolvedDigest(header, "registry")
        reason = f"the registry answered HTTP {response.status_code}" + (
            "" if response.status_code != 200 else " without a Docker-Content-Digest header"
        )
    except requests.RequestException as exc:
        reason = f"the registry could not be reached ({type(exc).__name__})"
    engine = pushed_digest(push_output)
    if engine is None:
        raise DigestUnresolved(
            f"cannot resolve the digest of {ref}: {reason} at {url}, and the push output names none; "
            "check the registry address and that the push succeeded"
        )
    return ResolvedDigest(engine, "engine", f"{reason}; using the digest the engine reported after its push")
