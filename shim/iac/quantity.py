"""Kubernetes resource quantities ("512Mi", "2Gi", "1.5G", "1e9") as exact byte counts.

The memory rule compares a pod's request with a measured number of bytes; a quantity the gate
cannot read is reported, never guessed. The suffixes are those of Kubernetes' resource.Quantity
(binary Ki..Ei, decimal k..E, milli m, and decimal exponents).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES = {
    "": 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]{1,3})|(Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE]))?$"
)


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(text: object) -> Decimal:
    """The quantity's value in base units (bytes for memory); ``QuantityError`` if unreadable."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise QuantityError(f"{text!r} is not a quantity")
    value = str(text).strip()
    match = _QUANTITY.match(value) if len(value) <= 64 else None
    if match is None:
        raise QuantityError(f"{value[:64]!r} is not a Kubernetes quantity such as 512Mi or 2Gi")
    number, exponent, suffix = match.groups()
    try:
        base = Decimal(number)
        if exponent:
            return base * (Decimal(10) ** int(exponent[1:]))
        return base * Decimal(_SUFFIXES[suffix or ""])
    except (InvalidOperation, ValueError):
        raise QuantityError(f"{value!r} is not a Kubernetes quantity") from None


def format_bytes(count: int | Decimal) -> str:
    """``1073741824`` -> ``"1.0 GiB (1073741824 bytes)"``: both readable and exact."""
    count = int(count)
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit} ({count} bytes)"
    return f"{count} bytes"
