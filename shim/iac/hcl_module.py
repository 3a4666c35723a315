"""Read a Terraform module's input variables from its HCL with python-hcl2.

The module is the single source of truth for its interface: the tfvars agreement test, the CDK
Terrain construct and ``shim tf synth`` all ask this reader instead of keeping their own list.
By convention ``variables.tf`` holds the inputs derived from the kernel's contract (``shim tf
vars`` emits them) and ``variables_platform.tf`` holds what Ops choose per environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from shim.iac.terraform_types import TfType, TypeSyntaxError, parse_type
from shim.resources import data_dir

CONTRACT_VARIABLES_FILE = "variables.tf"

#: ``--module`` choice -> directory name under terraform/modules.
MODULES: dict[str, str] = {
    "k8s": "k8s-model-endpoint",
    "sagemaker": "sagemaker-model-endpoint",
}


class ModuleReadError(Exception):
    """The module directory or one of its files cannot be read as HCL."""


@dataclass(frozen=True)
class ModuleVariable:
    name: str
    type: TfType
    required: bool
    description: str
    file: str

    @property
    def from_contract(self) -> bool:
        return self.file == CONTRACT_VARIABLES_FILE


def module_dir(module: str) -> Path:
    """Absolute path of a shipped module, by ``--module`` name (k8s, sagemaker)."""
    if module not in MODULES:
        raise ModuleReadError(f"unknown module {module!r}; choose one of {', '.join(MODULES)}")
    return (data_dir("terraform") / "modules" / MODULES[module]).resolve()


def _unquote(label: str) -> str:
    """Block labels keep their quotes in some python-hcl2 versions."""
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


@cache
def read_variables(directory: Path) -> dict[str, ModuleVariable]:
    """Every ``variable`` block in the module's ``*.tf`` files, by name."""
    import hcl2
    from hcl2.utils import SerializationOptions

    directory = Path(directory)
    files = sorted(directory.glob("*.tf"))
    if not files:
        raise ModuleReadError(f"{directory}: no .tf files (is this a Terraform module directory?)")
    options = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    variables: dict[str, ModuleVariable] = {}
    for path in files:
        try:
            with path.open(encoding="utf-8") as handle:
                document = hcl2.load(handle, serialization_options=options)
        except Exception as exc:  # python-hcl2 raises lark errors of several kinds
            raise ModuleReadError(f"{path}: not valid HCL: {exc}") from None
        for block in document.get("variable", []):
            for raw_name, body in block.items():
                name = _unquote(raw_name)
                try:
                    var_type = parse_type(body.get("type", "any"))
                except TypeSyntaxError as exc:
                    raise ModuleReadError(f"{path}: variable {name!r}: {exc}") from None
                variables[name] = ModuleVariable(
                    name=name,
                    type=var_type,
                    required="default" not in body,
                    description=str(body.get("description", "")),
                    file=path.name,
                )
    return variables
