"""What the deployment says about the kernel, checked against the kernel in the image.

The Terraform modules (and `shim tf vars`) hand the container the model's name and version and
the contract's batching settings as ``KERNELSHIM_*`` environment variables. The name and version
are a guard: a Deployment that says it runs ``fraud-model`` 2.1.0 but whose image holds another
kernel refuses to start instead of silently serving the wrong model. The batching settings let Ops
tune the dynamic batcher per environment without rebuilding the image, within what the contract
allows (a kernel whose contract disables batching cannot have it switched on from outside).
"""

from __future__ import annotations

import dataclasses

from shim.server.settings import ENV_PREFIX, ServerSettings
from shim.spec.kernel import Batching, Kernel


class DeploymentMismatch(ValueError):
    """The deployment's settings contradict the kernel's contract; the message says which and how."""


def apply_deployment(kernel: Kernel, settings: ServerSettings) -> Kernel:
    """The kernel as this deployment serves it: identity checked, batching overrides applied."""
    for field, expected, actual in (("model_name", settings.model_name, kernel.name),
                                    ("model_version", settings.model_version, kernel.version)):
        if expected and expected != actual:
            raise DeploymentMismatch(
                f"{ENV_PREFIX}{field.upper()}={expected!r} but the kernel at {settings.kernel_dir} is "
                f"{kernel.name} {kernel.version} ({kernel.metadata_path}): the deployment points at the "
                "wrong image; deploy the image built from this model, or fix the deployment's variables"
            )
    size, delay = settings.max_batch_size, settings.max_queue_delay_us
    if size < 0 and delay < 0:
        return kernel
    contract = kernel.batching
    if size > 0 and not contract.enabled:
        raise DeploymentMismatch(
            f"{ENV_PREFIX}MAX_BATCH_SIZE={size} but {kernel.metadata_path} sets batching.max_batch_size "
            "to 0 (the model does not accept a batch dimension); unset the variable or enable batching "
            "in the contract"
        )
    if size > contract.max_batch_size:
        raise DeploymentMismatch(
            f"{ENV_PREFIX}MAX_BATCH_SIZE={size} exceeds the contract's batching.max_batch_size "
            f"{contract.max_batch_size} ({kernel.metadata_path}); the golden samples and the limits were "
            "validated up to that size, so use a value from 0 to it"
        )
    batching = Batching(
        max_batch_size=contract.max_batch_size if size < 0 else size,
        max_queue_delay_us=contract.max_queue_delay_us if delay < 0 else delay,
    )
    return dataclasses.replace(kernel, batching=batching)
