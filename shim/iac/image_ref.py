"""Container image references: parse them and tell whether they are pinned by digest.

The grammar follows the OCI distribution reference (domain, path components, optional tag,
optional digest). kernelshim only accepts explicit registries, so a reference's first component
is always the registry; the same grammar is enforced by the modules' ``image`` validation.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

_REFERENCE = re.compile(
    r"^(?P<registry>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?)"
    r"/(?P<repository>[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)

EXAMPLE = "registry.example.com/models/iris-classifier@sha256:" + "0" * 64


class ImageRefError(ValueError):
    """The text is not an image reference kernelshim accepts."""


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def pinned(self) -> bool:
        """A digest names exactly one image; a tag can be moved to another."""
        return self.digest is not None

    @property
    def location(self) -> str:
        """``registry/repository``: what allowed-registry patterns are matched against."""
        return f"{self.registry}/{self.repository}"

    def allowed_by(self, patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(self.location, pattern) for pattern in patterns)


def parse_image_ref(text: str) -> ImageRef:
    match = _REFERENCE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ImageRefError(
            f"{text!r} is not an image reference of the form REGISTRY/REPOSITORY[:TAG]@sha256:DIGEST "
            f"(e.g. {EXAMPLE})"
        )
    return ImageRef(
        registry=match["registry"], repository=match["repository"], tag=match["tag"], digest=match["digest"]
    )


def require_pinned(text: str) -> ImageRef:
    """Parse ``text`` and insist on a digest; the error says how to get one."""
    ref = parse_image_ref(text)
    if not ref.pinned:
        raise ImageRefError(
            f"image {text!r} is not pinned by digest: a tag can be moved to another image. "
            "Use REF@sha256:<digest> (`shim image build` prints it; `skopeo inspect` or "
            "`docker buildx imagetools inspect` show it for a pushed tag)"
        )
    return ref
