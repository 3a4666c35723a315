"""``shim tf synth``: a CDK Terrain app with one ``SecureModelEndpoint`` built from a kernel."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shim.iac.construct import ConstructInputError, SecureModelEndpoint
from shim.iac.tfvars import tfvars_for
from shim.spec.kernel import Kernel

_VALIDATION_PREFIX = re.compile(r"^.*?Validation failed with the following errors:\s*", re.S)


def synth_app(build, outdir: Path) -> None:
    """Create an App writing to ``outdir``, let ``build(app)`` add stacks, synthesize.

    Construct validation errors come back from the jsii kernel as a JavaScript error; they are
    re-raised as ``ConstructInputError`` with one problem per line.
    """
    from cdktn import App

    app = App(outdir=str(Path(outdir).resolve()))
    build(app)
    try:
        app.synth()
    except Exception as exc:  # jsii surfaces JavaScript errors as RuntimeError/JSIIError
        message = str(exc)
        if "Validation failed" not in message:
            raise
        problems = "\n".join(
            "  " + line.strip()
            for line in _VALIDATION_PREFIX.sub("", message).splitlines()
            if line.strip().startswith("[")
        )
        raise ConstructInputError(
            f"synth failed, the endpoint's inputs do not fit the module:\n{problems}"
        ) from None


def synth_endpoint(module: str, variables: Mapping[str, Any], *, outdir: Path, stack_name: str) -> Path:
    """Synthesize one stack holding one endpoint; return the path of its ``cdk.tf.json``."""
    from cdktn import TerraformOutput, TerraformStack

    def build(app) -> None:
        stack = TerraformStack(app, stack_name)
        endpoint = SecureModelEndpoint(stack, "endpoint", module=module, variables=variables)
        first_output = "name" if module == "k8s" else "endpoint_name"
        TerraformOutput(stack, "endpoint_name", value=endpoint.output(first_output))

    synth_app(build, outdir)
    return Path(outdir).resolve() / "stacks" / stack_name / "cdk.tf.json"


def synth_kernel_endpoint(
    kernel: Kernel,
    image: str,
    module: str,
    *,
    platform: Mapping[str, Any] | None = None,
    outdir: Path,
    stack_name: str | None = None,
) -> Path:
    """The contract's variables (as ``shim tf vars``) plus Ops' ``platform`` variables, synthesized."""
    # A null value means "the module's default" (e.g. no measured memory peak): leave it out, as
    # the synthesized JSON would anyway.
    contract = {k: v for k, v in tfvars_for(kernel, image, module).items() if v is not None}
    variables = {**contract, **dict(platform or {})}
    return synth_endpoint(module, variables, outdir=outdir, stack_name=stack_name or kernel.name)
