"""``SecureModelEndpoint``: a CDK Terrain construct over the HCL endpoint modules.

It does not re-describe any resource: it instantiates terraform/modules/<module> with
``TerraformHclModule``, so the HCL stays the single source of truth. Its inputs are checked at
synth time against the module's own variable declarations (read with python-hcl2): unknown
names, missing required variables, wrong types and an empty ``cost_center`` all fail ``synth``
with a message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# jsii's "untested Node version" banner on every start is noise; its end-of-life warning stays.
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

import jsii
from cdktn import TerraformHclModule
from constructs import Construct, IValidation

from shim.iac.hcl_module import ModuleVariable, module_dir, read_variables
from shim.iac.image_ref import ImageRefError, require_pinned
from shim.iac.terraform_types import type_problems


class ConstructInputError(ValueError):
    """The construct's inputs do not fit the module; raised by ``synth`` with every problem."""


def input_problems(variables: Mapping[str, Any], declared: Mapping[str, ModuleVariable]) -> list[str]:
    """Every way ``variables`` fails the module's declared interface (empty when they fit)."""
    problems: list[str] = []
    cost_center = variables.get("cost_center")
    if "cost_center" in declared and (not isinstance(cost_center, str) or not cost_center.strip()):
        problems.append(
            "cost_center is required and must not be empty: every endpoint is billed to a cost center "
            "(it comes from the kernel contract's cost_center field)"
        )
    image = variables.get("image")
    if "image" in declared and isinstance(image, str):
        try:
            require_pinned(image)
        except ImageRefError as exc:
            problems.append(f"image: {exc}")
    for name in sorted(set(variables) - set(declared)):
        problems.append(f"{name!r} is not a variable of the module (known: {', '.join(sorted(declared))})")
    for var in declared.values():
        if var.name == "cost_center":
            continue
        if var.required and variables.get(var.name) is None:
            problems.append(f"{var.name} is required: {var.description}")
    for name, value in variables.items():
        if name in declared:
            problems.extend(type_problems(value, declared[name].type, name))
    return problems


@jsii.implements(IValidation)
class _ModuleInputValidation:
    """Runs when the app synthesizes (App.synth validates every construct first)."""

    def __init__(self, endpoint: SecureModelEndpoint) -> None:
        self._endpoint = endpoint

    def validate(self) -> list[str]:
        return input_problems(self._endpoint.variables, self._endpoint.declared)


class SecureModelEndpoint(Construct):
    """One model endpoint: the HCL module ``module`` ("k8s" or "sagemaker") with ``variables``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        module: str,
        variables: Mapping[str, Any],
        module_source: Path | None = None,
    ) -> None:
        super().__init__(scope, id)
        source = Path(module_source).resolve() if module_source else module_dir(module)
        self.module_name = module
        self.declared = read_variables(source)
        self.variables = dict(variables)
        self.module = TerraformHclModule(
            self,
            "module",
            source=str(source),
            variables=self.variables,
            # The module is referenced in place (absolute path) instead of copied into cdktf.out.
            skip_asset_creation_from_local_modules=True,
        )
        self.node.add_validation(_ModuleInputValidation(self))

    def output(self, name: str) -> str:
        """A Terraform reference to one of the module's outputs."""
        return self.module.get_string(name)
