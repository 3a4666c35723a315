"""Check a KServe InferenceService body against the ``kserve`` package's own API models.

``kubernetes_manifest`` takes the InferenceService as an untyped object, so no Terraform schema
says whether ``spec.predictor.scaleTarget`` exists. The ``kserve`` Python package's generated
models do: each class has ``attribute_map`` (Python name -> JSON field) and ``openapi_types``
(Python name -> type, e.g. ``list[V1Container]``); the Kubernetes types they refer to come from the
``kubernetes`` package's models, built the same way. Both are read from the wheels with ``ast``
(never installed, imported or executed), so the check needs neither package's dependencies.
"""

from __future__ import annotations

import ast
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The top-level model of each kind this module checks.
ROOT_MODELS = {"InferenceService": "V1beta1InferenceService"}
_MODEL_DIRS = re.compile(r"^(kserve/models|kubernetes/client/models)/[a-z0-9_]+\.py$")
_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(str, (.+)\)$")


@dataclass(frozen=True)
class Model:
    name: str
    fields: dict[str, str]  # JSON field -> openapi type


class ModelReadError(Exception):
    """A wheel holds no readable API models."""


def _literal_dict(node: ast.AST) -> dict[str, str] | None:
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None
    return value if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()) else None


def _models_in_source(source: str) -> Iterator[Model]:
    tree = ast.parse(source)
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        found: dict[str, dict[str, str]] = {}
        for statement in node.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = statement.targets[0]
                if isinstance(target, ast.Name) and target.id in ("attribute_map", "openapi_types"):
                    value = _literal_dict(statement.value)
                    if value is not None:
                        found[target.id] = value
        if "attribute_map" in found and "openapi_types" in found:
            types = found["openapi_types"]
            yield Model(
                node.name,
                {
                    json_name: types.get(py_name, "object")
                    for py_name, json_name in found["attribute_map"].items()
                },
            )


def read_models(wheels: Iterable[Path]) -> dict[str, Model]:
    """Every API model class in the wheels' ``kserve/models`` and ``kubernetes/client/models``."""
    models: dict[str, Model] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if _MODEL_DIRS.match(name):
                    source = archive.read(name).decode("utf-8", "replace")
                    for model in _models_in_source(source):
                        models.setdefault(model.name, model)
    if not models:
        raise ModelReadError(f"no API models in {', '.join(str(w) for w in wheels)}")
    return models


def _element(type_name: str) -> tuple[str, str]:
    """("list"|"dict"|"plain", inner type)."""
    if match := _LIST.match(type_name):
        return "list", match[1]
    if match := _DICT.match(type_name):
        return "dict", match[1]
    return "plain", type_name


def check_body(body: Any, model_name: str, models: dict[str, Model], path: str = "") -> list[str]:
    """Problems ("spec.predictor.scaleTargte: not a field of V1beta1PredictorSpec") in ``body``.

    Values that are Terraform expressions (strings like ``${var.x}``) are not descended into:
    their shape is only known at plan time.
    """
    model = models.get(model_name)
    if model is None or not isinstance(body, dict):
        return []
    problems: list[str] = []
    for key, value in body.items():
        if key.startswith("__"):  # python-hcl2 markers
            continue
        where = f"{path}.{key}" if path else key
        if key not in model.fields:
            problems.append(f"{where}: not a field of {model_name}")
            continue
        kind, inner = _element(model.fields[key])
        if kind == "list" and isinstance(value, list):
            for index, item in enumerate(value):
                problems += check_body(item, inner, models, f"{where}[{index}]")
        elif kind == "dict" and isinstance(value, dict):
            for name, item in value.items():
                problems += check_body(item, inner, models, f"{where}.{name}")
        elif kind == "plain":
            problems += check_body(value, inner, models, where)
    return problems


def check_manifest(manifest: dict[str, Any], models: dict[str, Model]) -> list[str]:
    kind = manifest.get("kind")
    if kind not in ROOT_MODELS:
        return [f"kind {kind!r} is not one this check knows ({', '.join(ROOT_MODELS)})"]
    return check_body(manifest, ROOT_MODELS[kind], models)
