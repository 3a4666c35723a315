"""Locate the JSON Schemas (contracts/) and Ops policies (policies/).

They live at the top of the repository so Ops and reviewers find them, and are copied into the
wheel as ``shim/_data/`` so an installed kernelshim carries the exact contract it enforces.
An editable install reads them from the checkout.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_dir(kind: str) -> Path:
    """Return the directory holding ``kind`` ("contracts" or "policies")."""
    for candidate in (_PACKAGE_DIR / "_data" / kind, _PACKAGE_DIR.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"kernelshim's {kind}/ directory is missing from the installation ({_PACKAGE_DIR}); "
        "reinstall kernelshim"
    )


def contract_path(name: str) -> Path:
    """Path of a JSON Schema under contracts/, e.g. ``model_metadata.schema.json``."""
    return data_dir("contracts") / name


def policy_path(name: str) -> Path:
    """Path of an Ops policy under policies/, e.g. ``artifact_policy.yaml``."""
    return data_dir("policies") / name
