"""The policy gate on a Terraform plan: what ``shim tf apply`` checks before it applies.

Rules (data in policies/plan_policy.yaml, codes in shim/findings.py):

* KS601 no delete or replace of a protected endpoint resource unless ``allow_destroy``;
* KS602/KS603 required Kubernetes labels / AWS tags present and non-empty;
* KS604 GPUs claimed at full scale (per replica x autoscaler maximum, summed) within the cap;
* KS605/KS606 every image pinned by digest and from an allowed location;
* KS607 a value one of these rules needs is unknown until apply: the gate fails closed;
* KS608-KS611 contract-derived rules on the serving workload (shim/iac/workload_rules.py):
  memory covers the validator's measured peak, probes on the v2 health endpoints, monitoring;
* KS612 every image is the one the deploy built (when the gate is told its digest).

A root configuration whose plan has no image in any resource (a provider-free stand-in) is held
to the same image rules on its ``image`` input variable (address ``var.image``).

Each finding's ``path`` is the resource address, so the message points at the exact object.
The attribute paths below are those of the hashicorp/kubernetes and hashicorp/aws provider
schemas as ``terraform show -json`` renders them (nested blocks are lists).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shim.findings import Finding
from shim.iac.image_ref import ImageRefError, parse_image_ref
from shim.iac.plan_json import UNKNOWN, Plan, ResourceChange, lookup_path
from shim.iac.plan_policy import PlanPolicy
from shim.iac.workload_rules import check_workloads

GPU_RESOURCE = "nvidia.com/gpu"
_DEPLOYMENT_TYPES = ("kubernetes_deployment_v1", "kubernetes_deployment")
_HPA_TYPES = (
    "kubernetes_horizontal_pod_autoscaler_v2",
    "kubernetes_horizontal_pod_autoscaler_v2beta2",
    "kubernetes_horizontal_pod_autoscaler_v1",
    "kubernetes_horizontal_pod_autoscaler",
)
_GPU_FAMILIES = ("ml.g", "ml.p")


def lookup(change: ResourceChange, *path: str | int) -> Any:
    """The planned value at ``path`` in ``change.after``; ``UNKNOWN`` if computed at apply; None if absent."""
    return lookup_path(change.after, change.after_unknown, *path)


def _items(value: Any) -> list[int]:
    return list(range(len(value))) if isinstance(value, list) else []


def manifest_kind(change: ResourceChange) -> str | None:
    for state in (change.after, change.before):
        if isinstance(state, dict) and isinstance(state.get("manifest"), dict):
            return state["manifest"].get("kind")
    return None


@dataclass(frozen=True)
class GpuClaim:
    address: str
    per_replica: int
    replicas: int

    @property
    def total(self) -> int:
        return self.per_replica * self.replicas


@dataclass
class GateResult:
    plan: Plan
    findings: list[Finding] = field(default_factory=list)
    gpu_claims: list[GpuClaim] = field(default_factory=list)
    gpu_cap: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def gpu_total(self) -> int:
        return sum(claim.total for claim in self.gpu_claims)


class PlanGate:
    def __init__(
        self, policy: PlanPolicy, *, allow_destroy: bool = False, expected_image_digest: str | None = None
    ) -> None:
        self.policy = policy
        self.allow_destroy = allow_destroy
        #: ``sha256:<hex>`` of the image this deploy built and pushed (KS612); None: not checked.
        self.expected_image_digest = expected_image_digest

    def evaluate(self, plan: Plan) -> GateResult:
        self._file = plan.source
        result = GateResult(plan=plan, gpu_cap=self.policy.gpu_cap)
        changes = [c for c in plan.resource_changes if c.mode == "managed"]
        images_seen = 0
        for change in changes:
            if change.deletes and not self.allow_destroy:
                result.findings.extend(self._destroy(change))
            if change.exists_after:
                result.findings.extend(self._labels(change))
                result.findings.extend(self._tags(change))
                images = list(self._image_paths(change))
                images_seen += len(images)
                result.findings.extend(self._images(change, images))
        if images_seen == 0:
            result.findings.extend(self._variable_image(plan))
        existing = [c for c in changes if c.exists_after]
        result.findings.extend(check_workloads(existing, self.policy.contract, self._finding))
        claims, gpu_findings = self._gpu_claims([c for c in changes if c.exists_after])
        result.gpu_claims = claims
        result.findings.extend(gpu_findings)
        if result.gpu_total > self.policy.gpu_cap:
            result.findings.append(self._gpu_over_cap(claims, result.gpu_total))
        return result

    def _finding(
        self, code: str, change: ResourceChange | str, message: str, expected: str, fix: str
    ) -> Finding:
        address = change if isinstance(change, str) else change.address
        return Finding(code, self._file, address, message, expected=expected, fix=fix)

    # KS601 -------------------------------------------------------------------------------------

    def _destroy(self, change: ResourceChange) -> Iterator[Finding]:
        kind = manifest_kind(change)
        if not any(
            p.type == change.type and (p.kind is None or p.kind == kind) for p in self.policy.protected
        ):
            return
        what = "replaced (destroyed and re-created)" if change.replaces else "destroyed"
        reason = f" because {change.action_reason.replace('_', ' ')}" if change.action_reason else ""
        yield self._finding(
            "KS601",
            change,
            f"{change.address} would be {what}{reason}: the endpoint goes down and its traffic fails",
            expected="endpoints are updated in place; deleting or replacing one is a deliberate act",
            fix="change the configuration so the endpoint is updated in place, or rerun with "
            "--allow-destroy if taking the endpoint down is intended",
        )

    # KS602 / KS603 -----------------------------------------------------------------------------

    def _label_paths(self, change: ResourceChange) -> Iterator[tuple[str, tuple[str | int, ...]]]:
        if change.type == "kubernetes_manifest":
            yield "metadata.labels", ("manifest", "metadata", "labels")
            if manifest_kind(change) == "InferenceService":
                yield "spec.predictor.labels", ("manifest", "spec", "predictor", "labels")
            return
        yield "metadata[0].labels", ("metadata", 0, "labels")
        if change.type in _DEPLOYMENT_TYPES:
            yield (
                "spec[0].template[0].metadata[0].labels",
                ("spec", 0, "template", 0, "metadata", 0, "labels"),
            )

    def _labels(self, change: ResourceChange) -> Iterator[Finding]:
        if change.type not in self.policy.labelled_types:
            return
        for where, path in self._label_paths(change):
            yield from self._required_keys(change, "KS602", "label", where, path, self.policy.label_keys)

    def _tags(self, change: ResourceChange) -> Iterator[Finding]:
        if change.type not in self.policy.tagged_types:
            return
        # tags_all adds the provider's default_tags; providers without it only have tags.
        attribute = "tags_all" if lookup(change, "tags_all") is not None else "tags"
        yield from self._required_keys(change, "KS603", "tag", attribute, (attribute,), self.policy.tag_keys)

    def _required_keys(
        self,
        change: ResourceChange,
        code: str,
        noun: str,
        where: str,
        path: tuple[str | int, ...],
        keys: tuple[str, ...],
    ) -> Iterator[Finding]:
        for key in keys:
            value = lookup(change, *path, key)
            if value is UNKNOWN:
                yield self._finding(
                    "KS607",
                    change,
                    f"{change.address}: {noun} {key!r} in {where} is known only after apply, "
                    "so the gate cannot check it",
                    expected=f"{noun}s known at plan time",
                    fix=f"set the {noun} from a variable or a literal",
                )
            elif not isinstance(value, str) or not value.strip():
                state = "is empty" if isinstance(value, str) else "is missing"
                yield self._finding(
                    code,
                    change,
                    f"{change.address}: required {noun} {key!r} {state} in {where}",
                    expected=f"{where} with non-empty {', '.join(keys)}",
                    fix=f"set {noun} {key!r} (the modules in terraform/modules set it from the contract)",
                )

    # KS605 / KS606 -----------------------------------------------------------------------------

    def _image_paths(self, change: ResourceChange) -> Iterator[tuple[str, Any]]:
        if change.type in _DEPLOYMENT_TYPES:
            pod = lookup(change, "spec", 0, "template", 0, "spec", 0)
            pod = pod if isinstance(pod, dict) else {}
            for block in ("init_container", "container"):
                for i in _items(pod.get(block)):
                    yield (
                        f"{block}[{i}].image",
                        lookup(change, "spec", 0, "template", 0, "spec", 0, block, i, "image"),
                    )
        elif change.type == "kubernetes_manifest" and manifest_kind(change) == "InferenceService":
            containers = lookup(change, "manifest", "spec", "predictor", "containers")
            for i in _items(containers):
                yield (
                    f"spec.predictor.containers[{i}].image",
                    lookup(change, "manifest", "spec", "predictor", "containers", i, "image"),
                )
        elif change.type == "aws_sagemaker_model":
            for block in ("primary_container", "container"):
                for i in _items(lookup(change, block)):
                    yield f"{block}[{i}].image", lookup(change, block, i, "image")

    def _variable_image(self, plan: Plan) -> Iterator[Finding]:
        """No resource carries an image: hold the root's ``image`` input to the image rules."""
        image = plan.variables.get("image")
        if isinstance(image, str):
            yield from self._images("var.image", [("the image input variable", image)])
        elif self.expected_image_digest:
            yield self._finding(
                "KS612",
                "plan",
                "the plan deploys no image (no resource has one and there is no image variable), so it "
                f"cannot be the image this deploy built ({self.expected_image_digest})",
                expected="the built image in the workload or the root's image variable",
                fix="pass the tfvars this deploy wrote to the root configuration",
            )

    def _images(self, change: ResourceChange | str, images: list[tuple[str, Any]]) -> Iterator[Finding]:
        for where, image in images:
            if image is UNKNOWN:
                yield self._finding(
                    "KS607",
                    change,
                    f"{_address(change)}: {where} is known only after apply, so it cannot be "
                    "checked for a digest",
                    expected="an image reference known at plan time",
                    fix="pass the image as a variable (shim tf vars --image REF@sha256:...)",
                )
                continue
            if image is None:
                continue
            try:
                ref = parse_image_ref(image)
            except ImageRefError:
                ref = None
            if ref is None or not ref.pinned:
                yield self._finding(
                    "KS605",
                    change,
                    f"{_address(change)}: {where} {image!r} is not pinned by digest",
                    expected="REGISTRY/REPOSITORY@sha256:<64 hex digits>",
                    fix="deploy the image by digest (shim tf vars --image REF@sha256:...)",
                )
            if ref is not None and not ref.allowed_by(list(self.policy.allowed_image_sources)):
                yield self._finding(
                    "KS606",
                    change,
                    f"{_address(change)}: {where} {image!r} comes from {ref.location}, "
                    "which is not an allowed image source",
                    expected=f"one of {', '.join(self.policy.allowed_image_sources)}",
                    fix="push the image to an allowed registry, or have Ops add its location to "
                    f"allowed_image_sources in {self.policy.source.name}",
                )
            expected = self.expected_image_digest
            if expected and ref is not None and ref.pinned and ref.digest != expected:
                yield self._finding(
                    "KS612",
                    change,
                    f"{_address(change)}: {where} is pinned to {ref.digest}, not to {expected}, "
                    "the image this deploy built and pushed",
                    expected=f"an image reference ending in @{expected}",
                    fix="deploy with the tfvars this run wrote (another tfvars file or a hard-coded image "
                    "in the root configuration overrides them)",
                )

    # KS604 -------------------------------------------------------------------------------------

    def _gpu_claims(self, changes: list[ResourceChange]) -> tuple[list[GpuClaim], list[Finding]]:
        claims: list[GpuClaim] = []
        findings: list[Finding] = []
        for change in changes:
            try:
                if change.type in _DEPLOYMENT_TYPES:
                    claims.extend(self._deployment_gpus(change, changes))
                elif change.type == "kubernetes_manifest" and manifest_kind(change) == "InferenceService":
                    claims.extend(self._inference_service_gpus(change))
                elif change.type == "aws_sagemaker_endpoint_configuration":
                    claims.extend(self._sagemaker_gpus(change, changes))
            except _GpuUnknown as exc:
                findings.append(
                    self._finding(
                        "KS607",
                        change,
                        f"{change.address}: {exc} is known only after apply or unreadable, "
                        "so the GPU total cannot be checked",
                        expected="GPU counts and replica limits known at plan time",
                        fix=exc.fix,
                    )
                )
        return [c for c in claims if c.total > 0], findings

    def _deployment_gpus(self, change: ResourceChange, changes: list[ResourceChange]) -> Iterator[GpuClaim]:
        pod = ("spec", 0, "template", 0, "spec", 0)
        per_pod = 0
        for i in _items(lookup(change, *pod, "container")):
            limits = lookup(change, *pod, "container", i, "resources", 0, "limits")
            requests = lookup(change, *pod, "container", i, "resources", 0, "requests")
            per_pod += _gpu_count(limits, requests, f"container[{i}] GPU limit")
        if per_pod == 0:
            return
        replicas = self._hpa_max(change, changes)
        if replicas is None:
            replicas = _int(lookup(change, "spec", 0, "replicas"), "spec[0].replicas", default=1)
        yield GpuClaim(change.address, per_pod, replicas)

    def _hpa_max(self, deployment: ResourceChange, changes: list[ResourceChange]) -> int | None:
        name = lookup(deployment, "metadata", 0, "name")
        namespace = lookup(deployment, "metadata", 0, "namespace") or "default"
        for hpa in changes:
            if hpa.type not in _HPA_TYPES:
                continue
            target_kind = lookup(hpa, "spec", 0, "scale_target_ref", 0, "kind")
            target_name = lookup(hpa, "spec", 0, "scale_target_ref", 0, "name")
            hpa_namespace = lookup(hpa, "metadata", 0, "namespace") or "default"
            if target_name is UNKNOWN and target_kind == "Deployment" and hpa_namespace == namespace:
                raise _GpuUnknown(f"the scale target of {hpa.address}", "name the Deployment from a variable")
            if target_kind == "Deployment" and target_name == name and hpa_namespace == namespace:
                return _int(lookup(hpa, "spec", 0, "max_replicas"), f"{hpa.address} max_replicas")
        return None

    def _inference_service_gpus(self, change: ResourceChange) -> Iterator[GpuClaim]:
        predictor = ("manifest", "spec", "predictor")
        per_pod = 0
        for i in _items(lookup(change, *predictor, "containers")):
            resources = lookup(change, *predictor, "containers", i, "resources")
            resources = resources if isinstance(resources, dict) else {}
            per_pod += _gpu_count(
                resources.get("limits"), resources.get("requests"), f"containers[{i}] GPU limit"
            )
        if per_pod == 0:
            return
        replicas = lookup(change, *predictor, "maxReplicas")
        if replicas is None:
            replicas = lookup(change, *predictor, "minReplicas")
        yield GpuClaim(change.address, per_pod, _int(replicas, "spec.predictor.maxReplicas", default=1))

    def _sagemaker_gpus(self, config: ResourceChange, changes: list[ResourceChange]) -> Iterator[GpuClaim]:
        config_name = lookup(config, "name")
        endpoints = [
            lookup(c, "name")
            for c in changes
            if c.type == "aws_sagemaker_endpoint" and lookup(c, "endpoint_config_name") == config_name
        ]
        for i in _items(lookup(config, "production_variants")):
            instance_type = lookup(config, "production_variants", i, "instance_type")
            if instance_type is UNKNOWN or not isinstance(instance_type, str):
                raise _GpuUnknown(
                    f"production_variants[{i}].instance_type", "set the instance type from a variable"
                )
            per_instance = self.policy.sagemaker_instance_gpus.get(instance_type)
            if per_instance is None:
                if instance_type.startswith(_GPU_FAMILIES):
                    raise _GpuUnknown(
                        f"the GPU count of instance type {instance_type}",
                        f"add {instance_type} to sagemaker_instance_gpus in {self.policy.source.name}",
                    )
                continue
            variant = lookup(config, "production_variants", i, "variant_name")
            instances = self._sagemaker_max_capacity(endpoints, variant, changes)
            if instances is None:
                instances = _int(
                    lookup(config, "production_variants", i, "initial_instance_count"),
                    f"production_variants[{i}].initial_instance_count",
                    default=1,
                )
            yield GpuClaim(config.address, per_instance, instances)

    @staticmethod
    def _sagemaker_max_capacity(
        endpoints: list[Any], variant: Any, changes: list[ResourceChange]
    ) -> int | None:
        wanted = {f"endpoint/{name}/variant/{variant}" for name in endpoints if isinstance(name, str)}
        for target in changes:
            if target.type == "aws_appautoscaling_target" and lookup(target, "resource_id") in wanted:
                return _int(lookup(target, "max_capacity"), f"{target.address} max_capacity")
        return None

    def _gpu_over_cap(self, claims: list[GpuClaim], total: int) -> Finding:
        ranked = sorted(claims, key=lambda c: c.total, reverse=True)
        detail = "; ".join(
            f"{c.address}: {c.per_replica} GPU x {c.replicas} replicas = {c.total}" for c in ranked
        )
        return self._finding(
            "KS604",
            ranked[0].address,
            f"the plan claims {total} GPUs at full scale, over the cap of {self.policy.gpu_cap} ({detail})",
            expected=f"at most {self.policy.gpu_cap} GPUs "
            "(GPUs per replica x maximum replicas, all endpoints)",
            fix="lower the GPUs per replica or the autoscaler maximum, or ask Ops to raise gpu_cap in "
            f"{self.policy.source.name}",
        )


def _address(change: ResourceChange | str) -> str:
    return change if isinstance(change, str) else change.address


class _GpuUnknown(Exception):
    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.fix = fix


def _int(value: Any, what: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if value is UNKNOWN or isinstance(value, bool):
        raise _GpuUnknown(what, "set it from a variable or a literal")
    try:
        return int(str(value))
    except ValueError:
        raise _GpuUnknown(what, "use a whole number") from None


def _gpu_count(limits: Any, requests: Any, what: str) -> int:
    for source in (limits, requests):
        if source is UNKNOWN:
            raise _GpuUnknown(what, "set the GPU count from a variable or a literal")
        if isinstance(source, dict) and source.get(GPU_RESOURCE) is not None:
            return _int(source[GPU_RESOURCE], what)
    return 0
