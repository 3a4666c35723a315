"""Imports inside ``shim`` point down only (the layering in DEVELOPERS' brief and README):

    spec (+ the leaf modules findings, strict_json, kernelfs, resources, sandbox, lineage,
    onnx_skeleton)
      <- protocol <- runtimes <- policy <- contract <- hooks | images | iac <- server | deploy <- cli

``deploy`` composes contract, images and iac (validate, build, push, plan, gate, apply), so it sits
above them, beside ``server`` (neither uses the other).

Every ``import``/``from ... import`` of a ``shim`` module anywhere in a module (top level or inside
a function, where lazy imports hide) is read with ``ast``; an import of a higher layer, or of a
sibling on the same level (hooks, images and iac are independent), fails with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHIM = Path(__file__).resolve().parents[1] / "shim"
LEAVES = {"__init__", "findings", "strict_json", "kernelfs", "resources", "sandbox", "spec", "lineage",
          "onnx_skeleton"}
LAYERS = [LEAVES, {"protocol"}, {"runtimes"}, {"policy"}, {"contract"}, {"hooks", "images", "iac"},
          {"server", "deploy"}, {"cli"}]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """The layer unit of a dotted module name: ``shim.policy.gate`` -> ``policy``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("shim")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "shim":  # `from shim import policy` is a unit; `import __version__` is not
                found += [(node.lineno, f"shim.{a.name}" if a.name in RANK else "shim") for a in node.names]
            elif node.module.startswith("shim."):
                found.append((node.lineno, node.module))
    return found


MODULES = sorted(p for p in SHIM.rglob("*.py") if "_pb2" not in p.name)


def test_every_unit_has_a_layer() -> None:
    units = {p.relative_to(SHIM).parts[0].removesuffix(".py") for p in MODULES}
    assert units - {"_data"} <= set(RANK), f"add {sorted(units - set(RANK))} to LAYERS"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SHIM)))
def test_imports_point_down(path: Path) -> None:
    own = path.relative_to(SHIM).parts[0].removesuffix(".py")
    upward = []
    for line, module in _imports(path):
        target = _unit(module)
        if target == own:
            continue
        if RANK[target] > RANK[own] or (RANK[target] == RANK[own] and own not in LEAVES):
            upward.append(f"{path.relative_to(SHIM.parent)}:{line} imports {module} "
                          f"({own} is layer {RANK[own]}, {target} is layer {RANK[target]})")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """Control: the same reading finds an upward import when there is one."""
    sample = tmp_path / "module.py"
    sample.write_text("def f():\n    from shim.server.app import build_app\n")
    assert _imports(sample) == [(2, "shim.server.app")]
