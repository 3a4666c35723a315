"""``shim profile``: the training profile of a kernel, from reference data the data scientist has.

The reference rows are read in this process (``shim.contract.profile_data``: parsers made for each
format, never a pickle), the model runs on them in the validator's sandboxed child process
(``run_in_child``, which loads the model exactly as the server does, ``load_as_served``), and the
profile is computed from both: per monitored feature its kind, missing and non-finite rates and a
reference (every value when there are at most ``max_sample`` of them, so the server's KS statistic
is exact; otherwise ``k`` quantiles, which keep it within 1/(k-1)); per output the class
frequencies (labels) or the distribution of the top probability or of the value. The document
satisfies contracts/profile.schema.json and is checked against the contract before it is written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from shim.contract.kernel import KernelError, read_kernel
from shim.contract.profile_check import check_profile, profile_cap
from shim.contract.profile_data import ReferenceData, ReferenceDataError, read_reference
from shim.findings import Finding
from shim.spec.kernel import Kernel
from shim.spec.monitoring import (
    PROFILE_VERSION,
    FeatureLayoutError,
    FeatureSource,
    MonitoringSpec,
    category_counts,
    detect_output_kind,
    feature_columns,
    feature_layout,
    monitoring_of,
    output_values,
)

DEFAULT_PROFILE_FILE = "profile.json"
#: Most reference values kept as they are; beyond it a quantile sketch.
MAX_SAMPLE = 5000
SKETCH_POINTS = (1001, 201)
MAX_CATEGORIES = 1024
#: An integer feature with at most this many distinct values is categorical.
CATEGORICAL_LIMIT = 64


class ProfileBuildError(Exception):
    def __init__(self, findings: list[Finding]) -> None:
        super().__init__("\n".join(f.render() for f in findings))
        self.findings = findings


def build_profile(
    kernel_dir: Path,
    data: list[Path],
    *,
    max_sample: int = MAX_SAMPLE,
    max_bytes: int | None = None,
    policy: dict[str, Any] | None = None,
    now: datetime | None = None,
    run_model: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Write the kernel's profile and return its path and document; raises ``ProfileBuildError``."""
    from shim.policy.loader import load_policies

    try:
        kernel = read_kernel(Path(kernel_dir))
    except KernelError as exc:
        raise ProfileBuildError(exc.findings) from None
    policy = policy if policy is not None else load_policies().artifact
    cap = max_bytes if max_bytes is not None else profile_cap(policy)
    monitoring = monitoring_of(kernel) or MonitoringSpec(DEFAULT_PROFILE_FILE)
    try:
        layout = feature_layout(kernel, monitoring)
    except FeatureLayoutError as exc:
        raise ProfileBuildError(
            [
                Finding(
                    "KS708",
                    str(kernel.metadata_path),
                    "$.inputs",
                    str(exc),
                    expected="features lists that fit the inputs",
                    fix="fix the features list or monitoring.summaries",
                )
            ]
        ) from None
    try:
        reference = read_reference(kernel, layout, [Path(p) for p in data])
    except ReferenceDataError as exc:
        raise ProfileBuildError([exc.finding]) from None
    outputs = _run_model(kernel, reference, policy) if run_model else {}
    created = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    document: dict[str, Any] = {}
    for points in (None, *SKETCH_POINTS):
        document = {
            "profile_version": PROFILE_VERSION,
            "model": {"name": kernel.name, "version": kernel.version},
            "created_at": created,
            "data": reference.files,
            "rows": reference.rows,
            "features": _features(kernel, layout, reference, max_sample, points),
            "outputs": _outputs(kernel, monitoring, outputs, max_sample, points),
        }
        text = json.dumps(document, separators=(",", ":"))
        if len(text.encode()) <= cap:
            break
    else:
        raise ProfileBuildError(
            [
                Finding(
                    "KS725",
                    str(kernel.root / monitoring.profile),
                    "",
                    f"would be {len(text.encode()):,} bytes even with sketches of "
                    f"{SKETCH_POINTS[-1]} points; "
                    f"the cap is {cap:,} bytes",
                    expected=f"at most {cap:,} bytes",
                    fix="monitor fewer features (features lists, monitoring.summaries for images) or raise "
                    "role_limits.profile in policies/artifact_policy.yaml",
                )
            ]
        )
    target = kernel.root / monitoring.profile
    target.write_text(text + "\n", encoding="utf-8")
    if monitoring_of(kernel) is not None:
        findings = check_profile(kernel, cap)
        if findings:
            raise ProfileBuildError(findings)
    return target, document


def _continuous(values: np.ndarray, max_sample: int, points: int | None) -> dict[str, Any]:
    finite = np.sort(values[np.isfinite(values)].astype(np.float64))
    if finite.size == 0:
        finite = np.zeros(1)
    if points is None and finite.size <= max_sample:
        return {"type": "sample", "values": finite.tolist()}
    k = points or SKETCH_POINTS[0]
    if finite.size <= k:
        return {"type": "sample", "values": finite.tolist()}
    quantiles = np.quantile(finite, np.linspace(0.0, 1.0, k), method="inverted_cdf")
    return {
        "type": "quantiles",
        "values": quantiles.tolist(),
        "n": int(finite.size),
        "ks_bound": 1.0 / (k - 1),
    }


def _counts(counts: dict[str, int]) -> dict[str, Any]:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ordered) > MAX_CATEGORIES:
        rest = sum(c for _k, c in ordered[MAX_CATEGORIES - 1 :])
        ordered = [*ordered[: MAX_CATEGORIES - 1], ("__other__", rest)]
    if not ordered:
        ordered = [("__none__", 0)]
    return {"type": "counts", "categories": [k for k, _c in ordered], "counts": [c for _k, c in ordered]}


def _features(
    kernel: Kernel, layout: list[FeatureSource], reference: ReferenceData, max_sample: int, points: int | None
) -> list[dict[str, Any]]:
    columns = feature_columns(layout, reference.inputs)
    features = []
    for source in layout:
        values = columns[source.name]
        missing = reference.missing.get(source.name, np.zeros(values.shape[0], dtype=bool))
        present = values[~missing]
        spec = kernel.input(source.input)
        assert spec is not None
        numeric = present.dtype.kind in "biuf"
        non_finite = int((~np.isfinite(present.astype(np.float64))).sum()) if present.dtype.kind == "f" else 0
        categorical = (
            not numeric
            or present.dtype.kind == "b"
            or (
                source.statistic is None
                and present.dtype.kind in "iu"
                and len(np.unique(present)) <= CATEGORICAL_LIMIT
            )
        )
        rows = max(int(values.shape[0]), 1)
        features.append(
            {
                "name": source.name,
                "source": source.to_json(),
                "kind": "categorical" if categorical else "continuous",
                "count": int(values.shape[0]),
                "missing_rate": float(missing.sum()) / rows,
                "non_finite_rate": non_finite / rows,
                "reference": _counts(category_counts(present))
                if categorical
                else _continuous(present.astype(np.float64), max_sample, points),
            }
        )
    return features


def _outputs(
    kernel: Kernel,
    monitoring: MonitoringSpec,
    outputs: dict[str, np.ndarray],
    max_sample: int,
    points: int | None,
) -> list[dict[str, Any]]:
    profiled = []
    for spec in kernel.outputs:
        array = outputs.get(spec.name)
        if array is None:
            continue
        kind = monitoring.outputs.get(spec.name) or detect_output_kind(spec, array)
        if kind in (None, "ignore"):
            continue
        values = output_values(kind, array)
        rows = max(int(values.shape[0]), 1)
        non_finite = int((~np.isfinite(values.astype(np.float64))).sum()) if values.dtype.kind == "f" else 0
        profiled.append(
            {
                "name": spec.name,
                "kind": kind,
                "count": int(values.shape[0]),
                "non_finite_rate": non_finite / rows,
                "reference": _counts(category_counts(values))
                if kind == "label"
                else _continuous(values.astype(np.float64), max_sample, points),
            }
        )
    return profiled


# -- the model on the reference data, in the sandboxed child ----------------------------------------


def _run_model(kernel: Kernel, reference: ReferenceData, policy: dict[str, Any]) -> dict[str, np.ndarray]:
    from shim.sandbox import Budget, SandboxFailure, run_isolated

    work = Path(tempfile.mkdtemp(prefix="shim-profile-"))
    try:
        for name, array in reference.inputs.items():
            if array.dtype.kind == "O":
                (work / f"in-{_safe(name)}.json").write_text(json.dumps([str(v) for v in array.ravel()]))
            else:
                np.save(work / f"in-{_safe(name)}.npy", np.ascontiguousarray(array), allow_pickle=False)
        payload = {
            "root": str(kernel.root.absolute()),
            "work": str(work),
            "inputs": {name: _safe(name) for name in reference.inputs},
        }
        try:
            answer = run_isolated(
                "shim.contract.profiling:run_in_child", payload, Budget.from_policy(policy["sample_run"]),
                writable=[work],
            )
        except SandboxFailure as exc:
            raise ProfileBuildError(
                [_model_failed(kernel, f"running the model on the reference data {exc}")]
            ) from None
        if answer.get("error"):
            raise ProfileBuildError([_model_failed(kernel, answer["error"])])
        outputs = {}
        for name, stem in answer["outputs"].items():
            path = work / f"out-{stem}.npy"
            if path.exists():
                outputs[name] = np.load(path, allow_pickle=False)
            else:
                outputs[name] = np.array(json.loads((work / f"out-{stem}.json").read_text()), dtype=object)
        return outputs
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _model_failed(kernel: Kernel, message: str) -> Finding:
    return Finding(
        "KS724",
        str(kernel.model_path),
        "",
        message[:600],
        expected="a model that runs on every reference row (as `shim validate` runs the samples)",
        fix="check that the reference data has the contract's datatypes and shapes; run `shim validate`",
    )


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)[:64] + f"-{abs(hash(name)) % 10**8}"


def run_in_child(payload: dict[str, Any], progress: Callable[[str], None]) -> dict[str, Any]:
    """Load the model as the server does and run it on the reference rows, in chunks."""
    from shim.contract.model_run import ModelRunFailure, load_as_served

    kernel = read_kernel(Path(payload["root"]))
    work = Path(payload["work"])
    inputs = {}
    for name, stem in payload["inputs"].items():
        path = work / f"in-{stem}.npy"
        inputs[name] = (
            np.load(path, allow_pickle=False)
            if path.exists()
            else np.array(json.loads((work / f"in-{stem}.json").read_text()), dtype=object)
        )
    try:
        runtime = load_as_served(kernel, "cpu", threads=1, progress=progress)
    except ModelRunFailure as exc:
        return {"error": str(exc)}
    rows = int(next(iter(inputs.values())).shape[0])
    dynamic = all(t.shape and t.shape[0] == -1 for t in kernel.inputs)
    chunk = max(1, min(kernel.batching.max_batch_size or 1024, 1024)) if dynamic else None
    parts: dict[str, list[np.ndarray]] = {}
    progress(str(kernel.model_path))
    try:
        if chunk is None:  # a static first dimension: one request per row
            batches = [
                {
                    n: a[i : i + 1].reshape(kernel.input(n).shape)
                    if -1 not in kernel.input(n).shape
                    else a[i : i + 1]
                    for n, a in inputs.items()
                }
                for i in range(rows)
            ]
        else:
            batches = [{n: a[i : i + chunk] for n, a in inputs.items()} for i in range(0, rows, chunk)]
        for batch in batches:
            result = runtime.predict(batch)
            for name, value in result.items():
                value = np.asarray(value)
                parts.setdefault(name, []).append(
                    value if chunk is not None else value.reshape(1, -1) if value.ndim <= 1 else value
                )
    except Exception as exc:
        return {"error": f"the model failed on the reference data: {type(exc).__name__}: {str(exc)[:400]}"}
    finally:
        runtime.close()
    stems = {}
    for index, (name, chunks) in enumerate(parts.items()):
        stem = f"{index}"
        array = np.concatenate(chunks)
        if array.dtype.kind in "biuf":
            np.save(work / f"out-{stem}.npy", array, allow_pickle=False)
        else:
            values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.ravel()]
            (work / f"out-{stem}.json").write_text(json.dumps(values))
        stems[name] = stem
    return {"outputs": stems}
