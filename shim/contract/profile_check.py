"""The training profile against its schema and the contract (KS701-KS710).

A kernel whose contract has a ``monitoring`` block carries the profile it names. The validator
checks that the profile is strict JSON within its size cap, satisfies contracts/profile.schema.json
and describes this contract: every monitored feature exists (same input, same column, same
summary), the outputs it profiled are the contract's outputs, and the tests the contract asks for
fit the feature kinds. The server reads the profile with the same function (``load_profile``), so a
profile the validator accepts is exactly one the server can monitor with.
"""

from __future__ import annotations

from typing import Any

from shim.findings import Finding
from shim.kernelfs import KernelFileError, read_regular
from shim.spec.kernel import Kernel
from shim.spec.monitoring import (
    DEFAULT_PROFILE_BYTES,
    FeatureLayoutError,
    MonitoringSpec,
    Profile,
    feature_layout,
    monitoring_of,
)
from shim.spec.schemas import describe_expectation, json_path, schema_errors
from shim.strict_json import StrictJSONError, loads_strict

PROFILE_SCHEMA = "profile.schema.json"
REGENERATE = "regenerate it with `shim profile KERNEL_DIR --data FILE...`"
_TESTS_FOR_KIND = {"continuous": {"ks", "psi"}, "categorical": {"chi2", "psi"}}


class ProfileError(Exception):
    """The profile cannot be used; ``findings`` say why."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__("; ".join(f.render().replace("\n", " ") for f in findings))
        self.findings = findings


def load_profile(kernel: Kernel, max_bytes: int = DEFAULT_PROFILE_BYTES) -> tuple[Profile, MonitoringSpec]:
    """The kernel's profile, checked against schema and contract; raises ``ProfileError``."""
    monitoring = monitoring_of(kernel)
    if monitoring is None:
        raise ValueError("the contract has no monitoring block")
    findings, profile = _check(kernel, monitoring, max_bytes)
    if findings or profile is None:
        raise ProfileError(findings)
    return profile, monitoring


def check_profile(kernel: Kernel, max_bytes: int = DEFAULT_PROFILE_BYTES) -> list[Finding]:
    """Findings of the kernel's monitoring block and profile; none when there is no block."""
    monitoring = monitoring_of(kernel)
    if monitoring is None:
        return []
    return _check(kernel, monitoring, max_bytes)[0]


def _check(
    kernel: Kernel, monitoring: MonitoringSpec, max_bytes: int
) -> tuple[list[Finding], Profile | None]:
    meta = str(kernel.metadata_path)
    try:
        layout = feature_layout(kernel, monitoring)
    except FeatureLayoutError as exc:
        return [
            Finding(
                "KS708",
                meta,
                "$.inputs",
                str(exc),
                expected="features lists whose names match the inputs' last dimension, and "
                "summaries of declared inputs",
                fix="fix the features list or monitoring.summaries in model_metadata.json",
            )
        ], None
    findings = _expected_findings(kernel, monitoring, meta)
    path = kernel.root / monitoring.profile
    file = str(path)
    try:
        raw = read_regular(path, max_bytes)
    except KernelFileError as exc:
        if exc.kind == "missing":
            return [
                *findings,
                Finding(
                    "KS701",
                    file,
                    "",
                    "the profile named by monitoring.profile does not exist",
                    expected="the training profile next to model_metadata.json",
                    fix=REGENERATE + ", or remove the monitoring block",
                ),
            ], None
        return [
            *findings,
            Finding(
                "KS702",
                file,
                "",
                f"cannot be read: {exc}",
                expected=f"a regular JSON file of at most {max_bytes:,} bytes",
                fix="make the reference smaller (fewer rows are sketched) and " + REGENERATE,
            ),
        ], None
    try:
        document = loads_strict(raw)
    except StrictJSONError as exc:
        return [
            *findings,
            Finding(
                "KS702",
                file,
                exc.location,
                f"is not strict JSON: {exc}",
                expected="one UTF-8 JSON object, unique keys, finite numbers",
                fix=REGENERATE,
            ),
        ], None
    errors = schema_errors(PROFILE_SCHEMA, document)
    if errors:
        return findings + [
            Finding("KS703", file, json_path(e), e.message, expected=describe_expectation(e), fix=REGENERATE)
            for e in errors[:25]
        ], None
    profile = Profile.from_json(document)
    findings += _against_contract(kernel, monitoring, profile, layout, file)
    return findings, profile


def _expected_findings(kernel: Kernel, monitoring: MonitoringSpec, meta: str) -> list[Finding]:
    expected = monitoring.expected
    out = []
    if expected.output is not None and expected.output not in {t.name for t in kernel.outputs}:
        out.append(
            Finding(
                "KS710",
                meta,
                "$.monitoring.expected.output",
                f"names output {expected.output!r}, which the contract does not declare",
                expected="one of " + ", ".join(t.name for t in kernel.outputs),
                fix="name the output whose value feedback is compared with",
            )
        )
    if expected.accuracy is not None and expected.mae is not None:
        out.append(
            Finding(
                "KS710",
                meta,
                "$.monitoring.expected",
                "declares both accuracy and mae",
                expected="accuracy (classification) or mae (regression)",
                fix="keep the figure that fits the model",
            )
        )
    return out


def _against_contract(
    kernel: Kernel, monitoring: MonitoringSpec, profile: Profile, layout: list[Any], file: str
) -> list[Finding]:
    findings: list[Finding] = []
    fix = "the contract changed since the profile was made: " + REGENERATE
    if profile.model_name != kernel.name:
        findings.append(
            Finding(
                "KS707",
                file,
                "$.model.name",
                f"was made for model {profile.model_name!r}, not {kernel.name!r}",
                expected=f"a profile of {kernel.name!r}",
                fix=REGENERATE,
            )
        )
    declared = {s.name: s for s in layout}
    profiled = {f.name: (i, f) for i, f in enumerate(profile.features)}
    for name, source in declared.items():
        if name not in profiled:
            findings.append(
                Finding(
                    "KS704",
                    file,
                    "$.features",
                    f"has no feature {name!r}, which the contract monitors",
                    expected="every feature of the contract's inputs",
                    fix=fix,
                )
            )
            continue
        index, feature = profiled[name]
        if feature.source != source.to_json() and not (
            source.statistic is None
            and feature.source.get("input") == source.input
            and feature.source.get("index") == source.index
            and "statistic" not in feature.source
        ):
            findings.append(
                Finding(
                    "KS705",
                    file,
                    f"$.features[{index}].source",
                    f"feature {name!r} was profiled from {feature.source}, but the contract "
                    f"puts it at {source.to_json()}",
                    expected=str(source.to_json()),
                    fix=fix,
                )
            )
    for name, (index, _feature) in profiled.items():
        if name not in declared:
            findings.append(
                Finding(
                    "KS704",
                    file,
                    f"$.features[{index}].name",
                    f"profiles feature {name!r}, which the contract's inputs do not have",
                    expected="only features of the contract's inputs (features lists, monitoring.summaries)",
                    fix=fix,
                )
            )
    outputs = {t.name: t for t in kernel.outputs}
    for index, output in enumerate(profile.outputs):
        if output.name not in outputs:
            findings.append(
                Finding(
                    "KS706",
                    file,
                    f"$.outputs[{index}].name",
                    f"profiles output {output.name!r}, which the contract does not declare",
                    expected="outputs " + ", ".join(outputs),
                    fix=fix,
                )
            )
        elif monitoring.outputs.get(output.name, output.kind) not in (output.kind, "ignore"):
            findings.append(
                Finding(
                    "KS706",
                    file,
                    f"$.outputs[{index}].kind",
                    f"output {output.name!r} was profiled as {output.kind}, the contract's "
                    f"monitoring.outputs says {monitoring.outputs[output.name]}",
                    expected=f"kind {monitoring.outputs[output.name]}",
                    fix=fix,
                )
            )
    for name in monitoring.outputs:
        if name not in outputs:
            findings.append(
                Finding(
                    "KS706",
                    str(kernel.metadata_path),
                    f"$.monitoring.outputs.{name}",
                    f"names output {name!r}, which the contract does not declare",
                    expected="outputs " + ", ".join(outputs),
                    fix="fix the output name",
                )
            )
    kinds = {f.name: f.kind for f in profile.features}
    kinds.update({o.name: ("categorical" if o.kind == "label" else "continuous") for o in profile.outputs})
    for name, test in monitoring.tests.items():
        where = f"$.monitoring.tests.{name}"
        if name not in kinds:
            findings.append(
                Finding(
                    "KS709",
                    str(kernel.metadata_path),
                    where,
                    f"asks for a {test} test of {name!r}, which is not a profiled feature",
                    expected="one of " + ", ".join(sorted(kinds)[:20]),
                    fix="name a feature of the contract's inputs",
                )
            )
        elif test not in _TESTS_FOR_KIND[kinds[name]]:
            findings.append(
                Finding(
                    "KS709",
                    str(kernel.metadata_path),
                    where,
                    f"asks for a {test} test of {name!r}, a {kinds[name]} feature",
                    expected=" or ".join(sorted(_TESTS_FOR_KIND[kinds[name]])),
                    fix="use ks for continuous and chi2 for categorical features",
                )
            )
    return findings


def profile_cap(policy: dict[str, Any]) -> int:
    return int((policy.get("role_limits") or {}).get("profile", DEFAULT_PROFILE_BYTES))
