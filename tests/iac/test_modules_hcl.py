"""The Terraform modules and examples: parse, document themselves, and are fmt-clean."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shim.iac.hcl_module import MODULES, read_variables

from .conftest import EXAMPLES, FIXTURES
from .conftest import MODULES as MODULES_DIR

ALL_DIRS = sorted(
    {p.parent for base in (MODULES_DIR, EXAMPLES, FIXTURES / "roots") for p in base.rglob("*.tf")}
)


def hcl(path: Path) -> dict:
    import hcl2
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    with path.open(encoding="utf-8") as handle:
        return hcl2.load(handle, serialization_options=options)


@pytest.mark.parametrize("path", sorted(p for d in ALL_DIRS for p in d.glob("*.tf")), ids=str)
def test_every_tf_file_parses(path):
    assert isinstance(hcl(path), dict)


@pytest.mark.parametrize("name", sorted(MODULES.values()))
def test_module_layout_and_documentation(name):
    module = MODULES_DIR / name
    for required in ("README.md", "versions.tf", "variables.tf", "outputs.tf"):
        assert (module / required).is_file(), f"{name} lacks {required}"
    (terraform_block,) = hcl(module / "versions.tf")["terraform"]
    assert terraform_block["required_version"].startswith(">=")
    for provider in terraform_block["required_providers"]:
        for spec in provider.values():
            assert spec["source"].startswith("hashicorp/") and "<" in spec["version"], spec
    variables = read_variables(module)
    readme = (module / "README.md").read_text(encoding="utf-8")
    for variable in variables.values():
        assert variable.description, f"{name}: variable {variable.name} has no description"
        assert f"`{variable.name}`" in readme, f"{name}/README.md does not document input {variable.name}"
    for block in hcl(module / "outputs.tf")["output"]:
        for output, body in block.items():
            assert body.get("description"), f"{name}: output {output} has no description"
            assert f"`{output}`" in readme, f"{name}/README.md does not document output {output}"
    # Every contract input is validated at plan time (the platform file holds Ops' choices).
    for block in hcl(module / "variables.tf")["variable"]:
        for variable, body in block.items():
            assert "validation" in body, f"{name}: contract input {variable} has no validation"


@pytest.mark.terraform
def test_terraform_fmt_clean(terraform):
    result = subprocess.run(
        [str(terraform.path), "fmt", "-check", "-recursive", "-diff", "-no-color", str(MODULES_DIR.parent)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
