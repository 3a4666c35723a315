"""Load policies/plan_policy.yaml (or a platform team's replacement) into a typed object."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shim.policy.loader import POLICY_DIR_ENV, PolicyError, load_policy_file
from shim.resources import policy_path

POLICY_FILE = "plan_policy.yaml"
SCHEMA = "plan_policy.schema.json"


@dataclass(frozen=True)
class ProtectedResource:
    type: str
    kind: str | None = None


@dataclass(frozen=True)
class PlanPolicy:
    protected: tuple[ProtectedResource, ...]
    label_keys: tuple[str, ...]
    labelled_types: frozenset[str]
    tag_keys: tuple[str, ...]
    tagged_types: frozenset[str]
    gpu_cap: int
    allowed_image_sources: tuple[str, ...]
    sagemaker_instance_gpus: dict[str, int]
    source: Path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path) -> PlanPolicy:
        return cls(
            protected=tuple(ProtectedResource(p["type"], p.get("kind")) for p in data["protected_resources"]),
            label_keys=tuple(data["required_labels"]["keys"]),
            labelled_types=frozenset(data["required_labels"]["resource_types"]),
            tag_keys=tuple(data["required_tags"]["keys"]),
            tagged_types=frozenset(data["required_tags"]["resource_types"]),
            gpu_cap=int(data["gpu_cap"]),
            allowed_image_sources=tuple(data["allowed_image_sources"]),
            sagemaker_instance_gpus=dict(data["sagemaker_instance_gpus"]),
            source=source,
        )


def load_plan_policy(policy_dir: Path | str | None = None) -> PlanPolicy:
    """The plan policy from ``policy_dir`` (or $KERNELSHIM_POLICY_DIR) if it has one, else the shipped one.

    Raises ``PolicyError`` naming the file and the broken field.
    """
    if policy_dir is None and os.environ.get(POLICY_DIR_ENV):
        policy_dir = os.environ[POLICY_DIR_ENV]
    path = policy_path(POLICY_FILE)
    if policy_dir is not None:
        override = Path(policy_dir)
        if not override.is_dir():
            raise PolicyError(f"{override}: policy directory does not exist")
        if (override / POLICY_FILE).is_file():
            path = override / POLICY_FILE
    return PlanPolicy.from_dict(load_policy_file(path, SCHEMA), path)
