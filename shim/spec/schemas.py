"""Load the versioned JSON Schemas from contracts/ and turn their errors into findings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from shim.resources import data_dir

METADATA_SCHEMA = "model_metadata.schema.json"
SAMPLE_SCHEMA = "golden_sample.schema.json"


@cache
def _registry() -> Registry:
    """Every schema in contracts/, addressable by its $id, so cross-file $refs resolve offline."""
    resources = []
    for path in sorted(data_dir("contracts").glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads((data_dir("contracts") / name).read_text(encoding="utf-8"))


@cache
def validator_for(name: str) -> Draft202012Validator:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(
        schema, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def json_path(error: ValidationError) -> str:
    """``$.inputs[0].shape`` style location of an error."""
    text = "$"
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _leaf_errors(errors: Iterator[ValidationError]) -> Iterator[ValidationError]:
    """Report the most specific errors: descend into anyOf/oneOf contexts."""
    for error in errors:
        if error.context:
            yield from _leaf_errors(iter(error.context))
        else:
            yield error


def schema_errors(name: str, instance: Any) -> list[ValidationError]:
    errors = _leaf_errors(validator_for(name).iter_errors(instance))
    return sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), e.validator))


def describe_expectation(error: ValidationError) -> str:
    """What the schema wanted at the failing spot, in words, taken from the schema itself."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    keyword = error.validator
    value = error.validator_value
    if keyword == "required":
        return f"required fields: {', '.join(value)}"
    if keyword == "additionalProperties":
        allowed = sorted((error.schema.get("properties") or {}).keys()) if isinstance(schema, dict) else []
        return f"only these fields: {', '.join(allowed)}" if allowed else "no extra fields"
    if keyword == "enum":
        return "one of " + ", ".join(map(str, value))
    if keyword == "const":
        return json.dumps(value)
    if keyword == "pattern":
        hint = schema.get("description", "")
        return f"a string matching {value}" + (f" ({hint})" if hint else "")
    if keyword == "format":
        return f"a valid {value}" + (f" ({schema['description']})" if schema.get("description") else "")
    if keyword == "type":
        return f"a value of type {value}"
    if keyword in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
        return f"{keyword} {value}"
    if keyword in {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"}:
        return f"{keyword} {value}"
    if keyword == "not":
        return f"not {json.dumps(value.get('const')) if isinstance(value, dict) else value}"
    return schema.get("description", f"{keyword}: {value}")
