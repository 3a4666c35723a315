"""Contract-derived gate rules on the workload that serves a kernel (KS608-KS611).

The validator measures the kernel (its peak memory on the golden samples) and the contract says
what the endpoint needs (a monitoring profile); the modules carry both into the plan as
annotations on the Deployment's pod template or the InferenceService. These rules read them back
from the plan JSON alone, so a plan produced by any root configuration (or by hand) is held to the
same facts:

* KS608 the serving container's memory request and limit cover the measured peak;
* KS609 its readiness/liveness/startup probes call the v2 health endpoints (or gRPC health);
* KS610 a monitored kernel's pods are scraped (annotations, or a ServiceMonitor/PodMonitor);
* KS611 a monitored kernel ships alert rules (a PrometheusRule) in the same plan.

Values Terraform only learns during apply fail closed (KS607), like the other gate rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shim.findings import Finding
from shim.iac.plan_json import UNKNOWN, ResourceChange, _Unknown, lookup_path
from shim.iac.plan_policy import ContractRules
from shim.iac.quantity import QuantityError, format_bytes, parse_quantity

#: Set by both modules on the serving container; picks it out among sidecars.
SERVING_ENV = "KERNELSHIM_MODEL_NAME"
Emit = Callable[[str, ResourceChange, str, str, str], Finding]


def _get(value: Any, unknown: Any, *path: str | int) -> Any:
    return lookup_path(value, unknown, *path)


@dataclass(frozen=True)
class Container:
    """The serving container, read the same way from a Deployment or an InferenceService."""

    where: str
    memory_request: Any
    memory_limit: Any
    probes: dict[str, tuple[Any, bool] | None]  # kind -> (http path, has grpc) or None if absent


@dataclass(frozen=True)
class Workload:
    change: ResourceChange
    namespace: Any
    annotations: dict[str, Any] | _Unknown
    container: Container | None


def _manifest_kind(change: ResourceChange) -> Any:
    after = change.after if isinstance(change.after, dict) else {}
    manifest = after.get("manifest")
    return manifest.get("kind") if isinstance(manifest, dict) else None


def _merge_annotations(*maps: Any) -> dict[str, Any] | _Unknown:
    merged: dict[str, Any] = {}
    for item in maps:
        if item is UNKNOWN:
            return UNKNOWN
        if isinstance(item, dict):
            merged.update(item)
    return merged


def _pick(containers: Any, env_of: Callable[[int], Any]) -> int | None:
    if not isinstance(containers, list) or not containers:
        return None
    for index in range(len(containers)):
        env = env_of(index)
        names = [e.get("name") for e in env if isinstance(e, dict)] if isinstance(env, list) else []
        if SERVING_ENV in names:
            return index
    return 0


def _deployment(change: ResourceChange) -> Workload:
    a, u = change.after, change.after_unknown
    pod = ("spec", 0, "template", 0, "spec", 0)
    annotations = _merge_annotations(
        _get(a, u, "metadata", 0, "annotations"),
        _get(a, u, "spec", 0, "template", 0, "metadata", 0, "annotations"),
    )
    index = _pick(_get(a, u, *pod, "container"), lambda i: _get(a, u, *pod, "container", i, "env"))
    container = None
    if index is not None:
        base = (*pod, "container", index)
        probes: dict[str, tuple[Any, bool] | None] = {}
        for kind in ("readiness", "liveness", "startup"):
            probe = _get(a, u, *base, f"{kind}_probe", 0)
            if probe is None:
                probes[kind] = None
                continue
            grpc = _get(a, u, *base, f"{kind}_probe", 0, "grpc", 0)
            probes[kind] = (_get(a, u, *base, f"{kind}_probe", 0, "http_get", 0, "path"), bool(grpc))
        container = Container(
            where=f"container[{index}]",
            memory_request=_get(a, u, *base, "resources", 0, "requests", "memory"),
            memory_limit=_get(a, u, *base, "resources", 0, "limits", "memory"),
            probes=probes,
        )
    return Workload(change, _get(a, u, "metadata", 0, "namespace"), annotations, container)


def _inference_service(change: ResourceChange) -> Workload:
    a, u = change.after, change.after_unknown
    predictor = ("manifest", "spec", "predictor")
    annotations = _merge_annotations(
        _get(a, u, "manifest", "metadata", "annotations"), _get(a, u, *predictor, "annotations")
    )
    containers = _get(a, u, *predictor, "containers")
    index = _pick(containers, lambda i: _get(a, u, *predictor, "containers", i, "env"))
    container = None
    if index is not None:
        base = (*predictor, "containers", index)
        probes: dict[str, tuple[Any, bool] | None] = {}
        for kind in ("readiness", "liveness", "startup"):
            probe = _get(a, u, *base, f"{kind}Probe")
            if probe is None:
                probes[kind] = None
                continue
            grpc = _get(a, u, *base, f"{kind}Probe", "grpc")
            probes[kind] = (_get(a, u, *base, f"{kind}Probe", "httpGet", "path"), grpc is not None)
        container = Container(
            where=f"spec.predictor.containers[{index}]",
            memory_request=_get(a, u, *base, "resources", "requests", "memory"),
            memory_limit=_get(a, u, *base, "resources", "limits", "memory"),
            probes=probes,
        )
    return Workload(change, _get(a, u, "manifest", "metadata", "namespace"), annotations, container)


def workloads(changes: list[ResourceChange], rules: ContractRules) -> Iterator[Workload]:
    for change in changes:
        if change.type in rules.workload_types:
            yield _deployment(change)
        elif change.type == "kubernetes_manifest" and _manifest_kind(change) == "InferenceService":
            yield _inference_service(change)


def check_workloads(changes: list[ResourceChange], rules: ContractRules, emit: Emit) -> Iterator[Finding]:
    """Every contract-derived finding for the workloads that exist after apply."""
    manifests = [(c, _manifest_kind(c)) for c in changes if c.type == "kubernetes_manifest"]
    for workload in workloads(changes, rules):
        if workload.annotations is UNKNOWN:
            yield emit(
                "KS607",
                workload.change,
                f"{workload.change.address}: the annotations are known only after apply, so the "
                "contract-derived rules (memory, monitoring) cannot be checked",
                "annotations known at plan time",
                "set the annotations from variables or literals",
            )
            continue
        yield from _memory(workload, rules, emit)
        yield from _probes(workload, rules, emit)
        yield from _monitoring(workload, rules, manifests, emit)


# KS608 ---------------------------------------------------------------------------------------


def _measured_peak(workload: Workload, rules: ContractRules, emit: Emit) -> tuple[int | None, list[Finding]]:
    raw = workload.annotations.get(rules.memory_peak_annotation)  # type: ignore[union-attr]
    if raw is None:
        return None, []
    if isinstance(raw, str) and raw.isdigit() and len(raw) <= 20:
        return int(raw), []
    return None, [
        emit(
            "KS608",
            workload.change,
            f"{workload.change.address}: annotation {rules.memory_peak_annotation} is not a whole number "
            "of bytes, so the memory cannot be checked against the measured peak",
            'the validator\'s measured peak in bytes, e.g. "734003200"',
            "let the module set it from measured_memory_peak_bytes (shim tf vars --validation-report)",
        )
    ]


def _memory(workload: Workload, rules: ContractRules, emit: Emit) -> Iterator[Finding]:
    peak, problems = _measured_peak(workload, rules, emit)
    yield from problems
    if peak is None or workload.container is None:
        return
    needed = Decimal(peak) * (100 + rules.memory_headroom_percent) / 100
    address = workload.change.address
    headroom = f" plus {rules.memory_headroom_percent}% headroom" if rules.memory_headroom_percent else ""
    for label, value in (
        ("request", workload.container.memory_request),
        ("limit", workload.container.memory_limit),
    ):
        where = f"{workload.container.where} memory {label}"
        if value is UNKNOWN:
            yield emit(
                "KS607",
                workload.change,
                f"{address}: {where} is known only after apply, so it cannot be checked against "
                "the measured memory peak",
                "a memory quantity known at plan time",
                "set the memory from a variable or a literal",
            )
            continue
        if value is None:
            yield emit(
                "KS608",
                workload.change,
                f"{address}: {where} is not set, but the validator measured a peak of {format_bytes(peak)}",
                f"a memory {label} of at least {format_bytes(needed)}",
                "set resources.memory in model_metadata.json to cover the measured peak",
            )
            continue
        try:
            amount = parse_quantity(value)
        except QuantityError as exc:
            yield emit(
                "KS608",
                workload.change,
                f"{address}: {where}: {exc}",
                "a Kubernetes memory quantity such as 2Gi",
                "fix resources.memory in model_metadata.json",
            )
            continue
        if amount < needed:
            yield emit(
                "KS608",
                workload.change,
                f"{address}: {where} {value} ({format_bytes(amount)}) is below the validator's "
                f"measured peak of {format_bytes(peak)}{headroom}: the pod would be OOM-killed",
                f"a memory {label} of at least {format_bytes(needed)}",
                "raise resources.memory in model_metadata.json (then `shim tf vars` / `shim deploy` "
                "again), or make the model use less memory",
            )


# KS609 ---------------------------------------------------------------------------------------


def _probes(workload: Workload, rules: ContractRules, emit: Emit) -> Iterator[Finding]:
    if workload.container is None:
        return
    address, where = workload.change.address, workload.container.where
    allowed = {
        "readiness": rules.readiness_paths,
        "liveness": rules.liveness_paths,
        "startup": (*rules.liveness_paths, *rules.readiness_paths),
    }
    grpc_hint = " or a gRPC health probe (grpc.health.v1)" if rules.allow_grpc_probes else ""
    for kind, paths in allowed.items():
        probe = workload.container.probes.get(kind)
        expected = f"an HTTP GET on {' or '.join(paths)}{grpc_hint}"
        if probe is None:
            if kind != "startup":
                yield emit(
                    "KS609",
                    workload.change,
                    f"{address}: {where} has no {kind} probe",
                    expected,
                    f"add a {kind} probe on {paths[0]} (the modules in terraform/modules do)",
                )
            continue
        path, grpc = probe
        if path is UNKNOWN:
            yield emit(
                "KS607",
                workload.change,
                f"{address}: {where} {kind} probe path is known only after apply",
                "a probe path known at plan time",
                "set the probe path as a literal",
            )
        elif grpc and rules.allow_grpc_probes:
            continue
        elif path not in paths:
            shown = repr(path)[:80] if path is not None else "no HTTP path"
            yield emit(
                "KS609",
                workload.change,
                f"{address}: {where} {kind} probe checks {shown}, not the Open Inference "
                "Protocol's health endpoint: a pod could be routed traffic before the model loaded",
                expected,
                f"point the {kind} probe at {paths[0]}",
            )


# KS610 / KS611 -------------------------------------------------------------------------------


def _same_namespace(change: ResourceChange, namespace: Any) -> bool:
    after = change.after if isinstance(change.after, dict) else {}
    manifest = after.get("manifest") if isinstance(after.get("manifest"), dict) else {}
    metadata = manifest.get("metadata") if isinstance(manifest.get("metadata"), dict) else {}
    other = metadata.get("namespace")
    return not (isinstance(other, str) and isinstance(namespace, str)) or other == namespace


def _monitoring(
    workload: Workload, rules: ContractRules, manifests: list[tuple[ResourceChange, Any]], emit: Emit
) -> Iterator[Finding]:
    annotations = workload.annotations
    assert isinstance(annotations, dict)
    if annotations.get(rules.monitoring_annotation) != "true":
        return
    address = workload.change.address
    present = [
        (c, kind) for c, kind in manifests if c.exists_after and _same_namespace(c, workload.namespace)
    ]
    scraped_by_annotation = all(annotations.get(k) == v for k, v in rules.scrape_annotations)
    scraped_by_monitor = any(kind in rules.scrape_kinds for _, kind in present)
    if not (scraped_by_annotation or scraped_by_monitor):
        wanted = ", ".join(f'{k}: "{v}"' for k, v in rules.scrape_annotations)
        monitors = f" or a {'/'.join(rules.scrape_kinds)} selecting them" if rules.scrape_kinds else ""
        yield emit(
            "KS610",
            workload.change,
            f"{address}: the kernel has a monitoring profile, but its pods carry no Prometheus scrape "
            "annotations and no monitor selects them, so its metrics are never collected",
            f"pod annotations {wanted}{monitors}",
            "keep the module's scrape annotations (prometheus_scrape) or enable its service_monitor",
        )
    if not any(kind in rules.rule_kinds for _, kind in present):
        yield emit(
            "KS611",
            workload.change,
            f"{address}: the kernel has a monitoring profile, but the plan holds no "
            f"{'/'.join(rules.rule_kinds)} in its namespace, so nothing alerts on it",
            f"a kubernetes_manifest of kind {' or '.join(rules.rule_kinds)} next to the workload",
            "enable the module's prometheus_rule (the kernel's alert rules)",
        )
