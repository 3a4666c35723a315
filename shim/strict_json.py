"""Strict JSON reading for contracts and samples.

``json.loads`` silently keeps the last of duplicate keys, accepts NaN/Infinity and turns 1e999
into infinity. A contract that means two things, or a number no system can hold, must be
rejected with a location instead.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Integers beyond signed 64-bit cannot reach any tensor or Terraform variable intact.
MAX_ABS_INT = 2**63
#: Deepest nesting accepted: every consumer (schema validation, placeholder search) walks the
#: document recursively, and no contract or sample needs more than a handful of levels.
MAX_DEPTH = 64


class StrictJSONError(ValueError):
    """Invalid JSON, with the 1-based line and column when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column

    @property
    def location(self) -> str:
        return f"line {self.line} column {self.column}" if self.line else ""


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError(f"duplicate key {key!r} in one object")
        result[key] = value
    return result


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"number {text} is too large to represent")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:  # before int(): CPython refuses to convert over 4300 digits
        raise StrictJSONError(f"integer {text[:40]}... ({len(text):,} digits) does not fit in 64 bits")
    value = int(text)
    if abs(value) >= MAX_ABS_INT:
        raise StrictJSONError(f"integer {text[:40]} does not fit in 64 bits")
    return value


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not valid JSON")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise StrictJSONError(
            f"string {text[:40]!r} holds a lone UTF-16 surrogate (\\ud800-\\udfff escape)"
        ) from None


def _check_depth(value: Any, limit: int) -> None:
    """Iterative (never recursive) so that the check itself cannot overflow the stack. Strings are
    checked to be Unicode text: a lone surrogate escape parses, but no UTF-8 writer can emit it."""
    if isinstance(value, str):
        _check_text(value)
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            for key in node:
                _check_text(key)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, str):
                _check_text(child)
            elif isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    raise StrictJSONError(f"nesting is deeper than {limit} levels")
                stack.append((child, depth + 1))


def loads_strict(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON, rejecting duplicate keys, NaN/Infinity, out-of-range numbers and deep nesting.
    Bytes must be UTF-8 without a byte-order mark (RFC 8259): ``json.loads`` would also guess
    UTF-16/32 and skip a BOM, so two tools could read different documents from one file."""
    if isinstance(text, (bytes, bytearray)):
        if text.startswith(b"\xef\xbb\xbf"):
            raise StrictJSONError("starts with a byte-order mark; JSON files are UTF-8 without one")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJSONError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    elif text.startswith("\ufeff"):
        raise StrictJSONError("starts with a byte-order mark; JSON files are UTF-8 without one")
    value = _parse(text)
    _check_depth(value, max_depth)
    return value


def _parse(text: str | bytes) -> Any:
    try:
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_float=_parse_float,
            parse_int=_parse_int,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise StrictJSONError(exc.msg, exc.lineno, exc.colno) from None
    except UnicodeDecodeError as exc:
        raise StrictJSONError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise StrictJSONError(f"nesting is deeper than {MAX_DEPTH} levels") from None
