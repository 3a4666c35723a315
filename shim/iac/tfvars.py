"""Terraform variables for an endpoint module, derived from a kernel's contract.

Ops never read the data scientists' Python; they get a ``.auto.tfvars.json`` whose every value
comes from ``model_metadata.json`` (plus the digest-pinned image Ops built). The variable names
are the module's ``variables.tf``; tests/iac/test_tfvars_agreement.py proves both sides agree.
"""

from __future__ import annotations

from typing import Any

from shim.iac.image_ref import require_pinned
from shim.spec.kernel import Kernel

DATA_CLASSIFICATION_LABEL = "data-classification"

#: Environment variables through which the endpoint receives the contract's batching settings.
BATCH_SIZE_ENV = "KERNELSHIM_MAX_BATCH_SIZE"
QUEUE_DELAY_ENV = "KERNELSHIM_MAX_QUEUE_DELAY_US"


class TfvarsError(Exception):
    """The kernel's contract lacks something the deployment needs; the message says how to add it."""


def data_classification(kernel: Kernel) -> str:
    """The contract's ``labels["data-classification"]``.

    Only the contract supplies it (no command-line override): the classification is a property of
    the data the model serves, recorded and reviewed with the model, and the deployed value must be
    the one the contract says.
    """
    value = (kernel.metadata.get("labels") or {}).get(DATA_CLASSIFICATION_LABEL, "")
    if not value:
        raise TfvarsError(
            f"{kernel.metadata_path}: $.labels.{DATA_CLASSIFICATION_LABEL} is missing; every endpoint "
            "must say what class of data it serves. Add it to model_metadata.json, e.g. "
            f'"labels": {{"{DATA_CLASSIFICATION_LABEL}": "internal"}} '
            "(public, internal, confidential or restricted)"
        )
    return value


def batching_environment(kernel: Kernel) -> dict[str, str]:
    return {
        BATCH_SIZE_ENV: str(kernel.batching.max_batch_size),
        QUEUE_DELAY_ENV: str(kernel.batching.max_queue_delay_us),
    }


def measured_memory_peak(report: Any) -> int | None:
    """Peak resident memory (bytes) the validator measured, or None when the report has none.

    Read defensively: a ``ValidationReport`` carries it as ``memory_peak.rss_bytes``; a report read
    back from ``shim validate --format json`` carries ``memory.peak_rss_bytes``. Anything else (no
    report, an older validator, a hostile file) yields None rather than a wrong figure.
    """
    if report is None:
        return None
    if isinstance(report, dict):
        memory = report.get("memory")
        value = memory.get("peak_rss_bytes") if isinstance(memory, dict) else None
    else:
        value = getattr(getattr(report, "memory_peak", None), "rss_bytes", None)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def monitoring_enabled(kernel: Kernel) -> bool:
    """True when the contract has a ``monitoring`` block: the endpoint must be scraped and alerted on."""
    return isinstance(kernel.metadata.get("monitoring"), dict)


def _extra_labels(kernel: Kernel) -> dict[str, str]:
    labels = dict(kernel.metadata.get("labels") or {})
    labels.pop(DATA_CLASSIFICATION_LABEL, None)  # has its own variable
    return labels


def _common(kernel: Kernel, image: str, report: Any = None) -> dict[str, Any]:
    require_pinned(image)
    resources = kernel.metadata.get("resources") or {}
    return {
        "model_name": kernel.name,
        "model_version": kernel.version,
        "image": image,
        "cost_center": kernel.metadata["cost_center"],
        "data_classification": data_classification(kernel),
        "gpu": int(resources.get("gpu", 0)),
        "environment": batching_environment(kernel),
        "measured_memory_peak_bytes": measured_memory_peak(report),
    }


def k8s_tfvars(kernel: Kernel, image: str, report: Any = None) -> dict[str, Any]:
    values = _common(kernel, image, report)
    values["labels"] = _extra_labels(kernel)
    values["monitoring_enabled"] = monitoring_enabled(kernel)
    resources = kernel.metadata.get("resources") or {}
    for key in ("cpu", "memory"):
        if key in resources:
            values[key] = resources[key]
    return values


def sagemaker_tfvars(kernel: Kernel, image: str, report: Any = None) -> dict[str, Any]:
    # cpu and memory have no SageMaker counterpart: the instance type (a platform input) sets them.
    values = _common(kernel, image, report)
    values["tags"] = _extra_labels(kernel)
    return values


BUILDERS = {"k8s": k8s_tfvars, "sagemaker": sagemaker_tfvars}


def tfvars_for(kernel: Kernel, image: str, module: str, report: Any = None) -> dict[str, Any]:
    """Variables for ``module`` ("k8s" or "sagemaker"); raises ``TfvarsError``/``ImageRefError``.

    ``report`` is the kernel's validation report (a ``ValidationReport`` or its JSON form): its
    measured memory peak becomes ``measured_memory_peak_bytes`` so the plan gate can check the
    pod's memory against it.
    """
    return BUILDERS[module](kernel, image, report)
