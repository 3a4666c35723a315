"""Terraform type constraints (``string``, ``map(string)``, ``object({a = number})``...): parse
the text a module declares and check a JSON value against it.

Used to prove that what kernelshim emits (tfvars, synthesized module calls) fits the module's
variables as declared in HCL, without a second list of types in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_-]*)|(?P<punct>[(){}\[\],=]))")


class TypeSyntaxError(ValueError):
    """The type constraint text is not one kernelshim understands."""


@dataclass(frozen=True)
class TfType:
    """A Terraform type constraint. ``kind`` is string/number/bool/any/list/set/map/object/tuple."""

    kind: str
    element: TfType | None = None
    attributes: dict[str, TfType] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()
    elements: tuple[TfType, ...] = ()

    def __str__(self) -> str:
        if self.kind in ("list", "set", "map"):
            return f"{self.kind}({self.element})"
        if self.kind == "object":
            inner = ", ".join(
                f"{k} = optional({v})" if k in self.optional else f"{k} = {v}"
                for k, v in self.attributes.items()
            )
            return f"object({{{inner}}})"
        if self.kind == "tuple":
            return f"tuple([{', '.join(map(str, self.elements))}])"
        return self.kind


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise TypeSyntaxError(f"unexpected {text[pos:]!r} in type constraint {text!r}")
        tokens.append(match["name"] or match["punct"])
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def _next(self) -> str:
        if self.pos >= len(self.tokens):
            raise TypeSyntaxError(f"type constraint {self.text!r} ends too early")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _expect(self, token: str) -> None:
        got = self._next()
        if got != token:
            raise TypeSyntaxError(f"expected {token!r} but found {got!r} in type constraint {self.text!r}")

    def parse(self) -> TfType:
        result = self._type()
        if self.pos != len(self.tokens):
            raise TypeSyntaxError(f"unexpected {self.tokens[self.pos]!r} in type constraint {self.text!r}")
        return result

    def _type(self) -> TfType:
        name = self._next()
        if name in ("string", "number", "bool", "any"):
            return TfType(name)
        if name in ("list", "set", "map"):
            self._expect("(")
            element = self._type()
            self._expect(")")
            return TfType(name, element=element)
        if name == "object":
            return self._object()
        if name == "tuple":
            self._expect("(")
            self._expect("[")
            elements = []
            while self.tokens[self.pos] != "]":
                elements.append(self._type())
                if self.tokens[self.pos] == ",":
                    self.pos += 1
            self._expect("]")
            self._expect(")")
            return TfType("tuple", elements=tuple(elements))
        raise TypeSyntaxError(f"unknown type {name!r} in type constraint {self.text!r}")

    def _object(self) -> TfType:
        self._expect("(")
        self._expect("{")
        attributes: dict[str, TfType] = {}
        optional: set[str] = set()
        while self.tokens[self.pos] != "}":
            key = self._next()
            self._expect("=")
            if self.tokens[self.pos] == "optional":
                self.pos += 1
                self._expect("(")
                attributes[key] = self._type()
                if self.tokens[self.pos] == ",":  # optional(type, default)
                    raise TypeSyntaxError(f"optional() defaults are not supported in {self.text!r}")
                self._expect(")")
                optional.add(key)
            else:
                attributes[key] = self._type()
            if self.tokens[self.pos] == ",":
                self.pos += 1
        self._expect("}")
        self._expect(")")
        return TfType("object", attributes=attributes, optional=frozenset(optional))


def parse_type(text: str) -> TfType:
    """Parse a type constraint as python-hcl2 renders it (``${map(string)}`` or ``string``)."""
    text = text.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    return _Parser(text).parse()


def type_problems(value: Any, expected: TfType, where: str = "") -> list[str]:
    """Why ``value`` (decoded JSON) does not fit ``expected``; empty when it fits.

    Strict on purpose: Terraform would convert "3" to a number, but kernelshim emits exact types,
    so a string where a number is declared means the two sides disagree.
    """
    label = where or "value"
    if value is None:  # null is accepted by every type (a required variable then fails on its own)
        return []
    kind = expected.kind
    if kind == "any":
        return []
    if kind == "string":
        return [] if isinstance(value, str) else [f"{label}: expected a string, got {type(value).__name__}"]
    if kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{label}: expected a number, got {type(value).__name__}"]
    if kind == "bool":
        return [] if isinstance(value, bool) else [f"{label}: expected a bool, got {type(value).__name__}"]
    if kind in ("list", "set", "tuple"):
        if not isinstance(value, list):
            return [f"{label}: expected a {kind}, got {type(value).__name__}"]
        if kind == "tuple":
            if len(value) != len(expected.elements):
                return [f"{label}: expected {len(expected.elements)} elements, got {len(value)}"]
            pairs = zip(value, expected.elements, strict=True)
            return [p for i, (v, t) in enumerate(pairs) for p in type_problems(v, t, f"{label}[{i}]")]
        assert expected.element is not None
        return [p for i, v in enumerate(value) for p in type_problems(v, expected.element, f"{label}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{label}: expected a map, got {type(value).__name__}"]
        assert expected.element is not None
        return [p for k, v in value.items() for p in type_problems(v, expected.element, f"{label}[{k!r}]")]
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{label}: expected an object, got {type(value).__name__}"]
        problems = [f"{label}: unexpected attribute {k!r}" for k in value if k not in expected.attributes]
        problems += [
            f"{label}: missing attribute {k!r}"
            for k in expected.attributes
            if k not in value and k not in expected.optional
        ]
        problems += [
            p
            for k, t in expected.attributes.items()
            if k in value
            for p in type_problems(value[k], t, f"{label}.{k}")
        ]
        return problems
    raise TypeSyntaxError(f"unknown type kind {kind!r}")
