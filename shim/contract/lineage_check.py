"""The contract's ``lineage`` block: consistency, and the training environment against the runtime.

The schema checks every format (digests, commit hashes, versions). This checks what a schema
cannot: a digest whose algorithm does not fit its source, a dataset URI that names another
dataset than ``training_dataset``, one metric on one split with two values, a commit that does not
identify the code (uncommitted changes), and the training environment against the packages the
runtime image freezes (policies/dependency_policy.yaml ``runtime_packages``, from which
images/level1-runtime/requirements-frozen*.txt are generated). A framework whose major.minor differs
is a warning, not an error: the model may well run, but "works on my machine" starts there, and
``--strict`` makes it fail.
"""

from __future__ import annotations

from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from shim.findings import Finding

_ALGORITHM = {"dvc": "md5", "manifest": "sha256"}


def _major_minor(text: str) -> tuple[int, int] | None:
    try:
        release = Version(text).release
    except InvalidVersion:
        return None
    return (release[0], release[1] if len(release) > 1 else 0)


def check_lineage(file: str, metadata: dict[str, Any], runtime_packages: dict[str, str]) -> list[Finding]:
    """Findings for ``metadata["lineage"]`` (a schema-valid contract); none when there is no block."""
    lineage = metadata.get("lineage")
    if not lineage:
        return []
    findings: list[Finding] = []
    dataset = lineage.get("dataset")
    if dataset:
        algorithm = dataset["digest"].split(":", 1)[0]
        wanted = _ALGORITHM[dataset["source"]]
        if algorithm != wanted:
            findings.append(Finding(
                "KS802", file, "$.lineage.dataset.digest",
                f"the dataset digest is {algorithm} but its source is {dataset['source']!r}",
                expected=f"a {wanted} digest for source {dataset['source']!r} (DVC records md5, a manifest "
                "is hashed with sha256)",
                fix="run `shim lineage KERNEL_DIR --dvc FILE` or `--manifest FILE` to record it again",
            ))
        if "nfiles" in dataset and not dataset["digest"].endswith(".dir"):
            findings.append(Finding(
                "KS802", file, "$.lineage.dataset.nfiles",
                "nfiles is given but the digest is of a single file (DVC ends a directory's md5 in .dir)",
                expected="nfiles only with a directory digest", fix="remove nfiles or record the directory",
            ))
        if "uri" in dataset and dataset["uri"] != metadata["training_dataset"]:
            findings.append(Finding(
                "KS802", file, "$.lineage.dataset.uri",
                f"names {dataset['uri']!r} but training_dataset is {metadata['training_dataset']!r}",
                expected="the same dataset URI in both places",
                fix="correct one of them (or drop lineage.dataset.uri: training_dataset already says it)",
            ))
    code = lineage.get("code")
    if code and code.get("dirty"):
        findings.append(Finding(
            "KS803", file, "$.lineage.code.dirty",
            f"training ran with uncommitted changes on top of commit {code['commit'][:12]}",
            expected="training code that is exactly the recorded commit",
            fix="commit the training code, re-run the training and record the new commit",
            severity="warning",
        ))
    seen: dict[tuple[str, str], float] = {}
    for index, entry in enumerate(lineage.get("evaluation") or []):
        key = (entry["metric"], entry["split"])
        if key in seen and seen[key] != entry["value"]:
            findings.append(Finding(
                "KS802", file, f"$.lineage.evaluation[{index}]",
                f"metric {key[0]!r} on split {key[1]!r} is {entry['value']!r} here and {seen[key]!r} "
                "in an earlier entry",
                expected="one value per metric and split",
                fix="keep the figure of this model; remove the other",
            ))
        seen.setdefault(key, entry["value"])
    findings += _environment_findings(file, lineage.get("environment") or {}, runtime_packages)
    return findings


def _environment_findings(file: str, environment: dict[str, Any],
                          runtime_packages: dict[str, str]) -> list[Finding]:
    frozen = {canonicalize_name(name): version for name, version in runtime_packages.items()}
    findings = []
    for name, trained in (environment.get("frameworks") or {}).items():
        runtime = frozen.get(canonicalize_name(name))
        if runtime is None:
            continue
        where = f"$.lineage.environment.frameworks.{name}"
        ours, theirs = _major_minor(trained), _major_minor(runtime)
        if ours is None:
            findings.append(Finding(
                "KS802", file, where, f"{name} version {trained!r} is not a release version",
                expected="a version such as 2.13.0", fix="record the version pip lists for it",
            ))
            continue
        if theirs is not None and ours != theirs:
            findings.append(Finding(
                "KS801", file, where,
                f"the model was trained with {name} {trained}; the runtime image freezes {name} {runtime}",
                expected=f"{name} {theirs[0]}.{theirs[1]}.x, as policies/dependency_policy.yaml "
                "runtime_packages (and images/level1-runtime/requirements-frozen*.txt) pin it",
                fix=f"train/export with {name} {runtime} and re-run the golden samples, or ask Ops to move "
                "the runtime image; the golden samples show whether the outputs still match",
                severity="warning",
            ))
    return findings
