"""Find the Terraform-compatible binary (``terraform`` or OpenTofu's ``tofu``) on PATH.

Both speak the same CLI for everything the runner uses (init, plan -out, show -json, apply
PLANFILE). ``KERNELSHIM_TERRAFORM`` names a specific binary when both are installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BINARY_ENV = "KERNELSHIM_TERRAFORM"
CANDIDATES = ("terraform", "tofu")


class TerraformNotFound(Exception):
    """Neither terraform nor tofu is available."""


@dataclass(frozen=True)
class TerraformBinary:
    path: Path
    version: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.version.split("-")[0].split(".")[:3] if part.isdigit())


def _version(path: Path) -> str:
    try:
        completed = subprocess.run(
            [str(path), "version", "-json"], capture_output=True, text=True, timeout=60, check=True
        )
        return str(json.loads(completed.stdout)["terraform_version"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        raise TerraformNotFound(
            f"{path} does not answer `version -json` like terraform/tofu: {exc}"
        ) from None


def find_terraform() -> TerraformBinary:
    """The binary named by $KERNELSHIM_TERRAFORM, else the first of terraform, tofu on PATH."""
    override = os.environ.get(BINARY_ENV)
    if override:
        found = shutil.which(override)
        if found is None:
            raise TerraformNotFound(f"${BINARY_ENV}={override!r} is not an executable file or on PATH")
        return TerraformBinary(Path(found), _version(Path(found)))
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return TerraformBinary(Path(found), _version(Path(found)))
    raise TerraformNotFound(
        "neither `terraform` nor `tofu` is on PATH; install one "
        "(https://developer.hashicorp.com/terraform/install "
        "or https://opentofu.org/docs/intro/install/; CI uses .ci/install-terraform.sh) or set "
        f"${BINARY_ENV} to its path"
    )
