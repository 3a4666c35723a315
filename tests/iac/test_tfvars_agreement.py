"""The tfvars `shim tf vars` emits agree with the modules' variables, read from the HCL itself.

Every emitted variable exists in the module with a compatible type; every required variable of
the module's contract inputs (variables.tf) is emitted; the example roots accept the same values
and pass them to the module. With a real terraform binary the module's own validation blocks
are evaluated on the generated values (a root made of the module's variables.tf needs no provider).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shim.contract.kernel import read_kernel
from shim.iac.hcl_module import MODULES, ModuleVariable, module_dir, read_variables
from shim.iac.terraform_types import type_problems
from shim.iac.tfvars import tfvars_for

from .conftest import ECR_IMAGE, EXAMPLES, IMAGE

IMAGES = {"k8s": IMAGE, "sagemaker": ECR_IMAGE}


def agreement_problems(values: dict, variables: dict[str, ModuleVariable]) -> list[str]:
    problems = [
        f"emitted {name!r} is not a variable of the module" for name in values if name not in variables
    ]
    problems += [
        f"required contract variable {v.name!r} ({v.file}) is not emitted"
        for v in variables.values()
        if v.from_contract and v.required and v.name not in values
    ]
    problems += [
        p
        for name, value in values.items()
        if name in variables
        for p in type_problems(value, variables[name].type, name)
    ]
    return problems


@pytest.fixture(params=sorted(MODULES))
def module(request) -> str:
    return request.param


def emitted(make_kernel, module: str) -> dict:
    return tfvars_for(read_kernel(make_kernel()), IMAGES[module], module)


def test_emitted_variables_match_the_module(make_kernel, module):
    variables = read_variables(module_dir(module))
    values = emitted(make_kernel, module)
    assert agreement_problems(values, variables) == []
    # Everything the contract feeds is emitted: no variables.tf input is left to a default by accident.
    contract_inputs = {v.name for v in variables.values() if v.from_contract}
    kernel_without = {"k8s": set(), "sagemaker": set()}[module]
    assert contract_inputs - set(values) == kernel_without


def test_renaming_a_variable_in_the_module_only_is_caught(make_kernel, module, tmp_path):
    copy = tmp_path / "module"
    shutil.copytree(module_dir(module), copy)
    path = copy / "variables.tf"
    path.write_text(path.read_text().replace('variable "cost_center"', 'variable "cost_centre"'))
    problems = agreement_problems(emitted(make_kernel, module), read_variables(copy))
    assert "emitted 'cost_center' is not a variable of the module" in problems
    assert "required contract variable 'cost_centre' (variables.tf) is not emitted" in problems


def test_renaming_a_variable_in_the_tfvars_only_is_caught(make_kernel, module):
    values = emitted(make_kernel, module)
    values["model_version_string"] = values.pop("model_version")
    problems = agreement_problems(values, read_variables(module_dir(module)))
    assert problems == [
        "emitted 'model_version_string' is not a variable of the module",
        "required contract variable 'model_version' (variables.tf) is not emitted",
    ]


def test_a_type_change_on_one_side_is_caught(make_kernel, module):
    values = emitted(make_kernel, module)
    values["gpu"] = "1"
    assert agreement_problems(values, read_variables(module_dir(module))) == [
        "gpu: expected a number, got str"
    ]


def example_dir(module: str) -> Path:
    return EXAMPLES / MODULES[module]


def test_example_root_accepts_the_tfvars_and_passes_them_to_the_module(make_kernel, module):
    import hcl2
    from hcl2.utils import SerializationOptions

    values = emitted(make_kernel, module)
    root_variables = read_variables(example_dir(module))
    assert agreement_problems(values, {k: v for k, v in root_variables.items()}) == []
    options = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    with (example_dir(module) / "main.tf").open() as handle:
        calls = [
            call
            for block in hcl2.load(handle, serialization_options=options)["module"]
            for call in block.values()
        ]
    (call,) = calls
    module_variables = read_variables(module_dir(module))
    arguments = {k for k in call if k != "source"}
    assert arguments <= set(module_variables), arguments - set(module_variables)
    assert {v.name for v in module_variables.values() if v.required} <= arguments
    for name in values:
        assert re.fullmatch(rf"\$\{{var\.{name}\}}", str(call[name])), (
            f"{name} is not passed through: {call[name]}"
        )


# --- the module's own validation blocks, evaluated by real Terraform --------------------------


def variables_only_root(tmp_path: Path, module: str, values: dict) -> Path:
    root = tmp_path / f"{module}-variables"
    root.mkdir()
    for name in ("variables.tf", "variables_platform.tf"):
        shutil.copy(module_dir(module) / name, root / name)
    (root / "endpoint.auto.tfvars.json").write_text(json.dumps(values), encoding="utf-8")
    if module == "sagemaker":
        (root / "platform.auto.tfvars.json").write_text(
            json.dumps(
                {
                    "execution_role_arn": "arn:aws:iam::123456789012:role/sagemaker-execution",
                    "vpc_subnet_ids": ["subnet-0a1b2c3d", "subnet-0b1c2d3e"],
                    "vpc_security_group_ids": ["sg-0c1d2e3f"],
                }
            ),
            encoding="utf-8",
        )
    return root


def terraform_plan(terraform, root: Path) -> subprocess.CompletedProcess:
    run = dict(cwd=root, capture_output=True, text=True, timeout=300)
    subprocess.run([str(terraform.path), "init", "-input=false", "-no-color"], check=True, **run)
    return subprocess.run([str(terraform.path), "plan", "-input=false", "-no-color"], **run)


@pytest.mark.terraform
def test_generated_tfvars_pass_the_modules_validations(terraform, make_kernel, module, tmp_path):
    result = terraform_plan(terraform, variables_only_root(tmp_path, module, emitted(make_kernel, module)))
    assert result.returncode == 0, result.stderr


@pytest.mark.terraform
@pytest.mark.parametrize(
    ("variable", "bad", "message"),
    [
        ("cost_center", "", "must not be empty"),
        ("gpu", 9, "whole number from 0 to 8"),
        ("image", "registry.example.com/models/iris-classifier:0.1.0", "must be pinned by digest"),
        ("data_classification", "secret-ish", "must be one of public, internal, confidential, restricted"),
    ],
)
def test_bad_values_fail_at_plan_time(terraform, make_kernel, module, tmp_path, variable, bad, message):
    values = {**emitted(make_kernel, module), variable: bad}
    result = terraform_plan(terraform, variables_only_root(tmp_path, module, values))
    assert result.returncode == 1
    flat = " ".join(result.stderr.split())
    assert "Invalid value for variable" in flat and message in flat, result.stderr
