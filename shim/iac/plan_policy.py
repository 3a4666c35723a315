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
class ContractRules:
    """The contract-derived rules (KS608-KS612); see policies/plan_policy.yaml ``contract_rules``."""

    workload_types: frozenset[str] = frozenset({"kubernetes_deployment_v1", "kubernetes_deployment"})
    memory_peak_annotation: str = "kernelshim.io/measured-memory-peak-bytes"
    memory_headroom_percent: int = 0
    readiness_paths: tuple[str, ...] = ("/v2/health/ready",)
    liveness_paths: tuple[str, ...] = ("/v2/health/live",)
    allow_grpc_probes: bool = True
    monitoring_annotation: str = "kernelshim.io/monitoring"
    scrape_annotations: tuple[tuple[str, str], ...] = (("prometheus.io/scrape", "true"),)
    scrape_kinds: tuple[str, ...] = ("ServiceMonitor", "PodMonitor")
    rule_kinds: tuple[str, ...] = ("PrometheusRule",)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ContractRules:
        if not data:
            return cls()
        return cls(
            workload_types=frozenset(data["workload_types"]),
            memory_peak_annotation=data["memory"]["peak_annotation"],
            memory_headroom_percent=int(data["memory"]["headroom_percent"]),
            readiness_paths=tuple(data["probes"]["readiness_paths"]),
            liveness_paths=tuple(data["probes"]["liveness_paths"]),
            allow_grpc_probes=bool(data["probes"]["allow_grpc"]),
            monitoring_annotation=data["monitoring"]["required_annotation"],
            scrape_annotations=tuple(sorted(data["monitoring"]["scrape_annotations"].items())),
            scrape_kinds=tuple(data["monitoring"]["scrape_kinds"]),
            rule_kinds=tuple(data["monitoring"]["rule_kinds"]),
        )


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
    contract: ContractRules = ContractRules()

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
            contract=ContractRules.from_dict(data.get("contract_rules")),
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
