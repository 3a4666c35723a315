"""Kubernetes resource quantities (``512Mi``, ``2Gi``, ``1.5G``) as numbers of bytes.

The contract's ``resources.memory`` uses the notation pods are sized in
(contracts/model_metadata.schema.json checks its form); the memory-budget check and the
Terraform variables need it as bytes.
"""

from __future__ import annotations

import re
from decimal import Decimal

_SUFFIXES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QUANTITY_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")


def memory_bytes(quantity: str) -> int:
    """``"512Mi"`` -> 536870912; ValueError for anything the contract's pattern rejects."""
    match = _QUANTITY_RE.match(quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a memory quantity like 512Mi or 2Gi")
    return int(Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""])


def format_bytes(count: int) -> str:
    """The smallest whole ``Mi`` quantity holding ``count`` bytes (how a person writes a limit)."""
    return f"{-(-count // 2**20)}Mi"
