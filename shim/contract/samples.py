"""Golden samples: run each sample request through the real decoding and runtime code and
compare with the expected outputs.

The same functions serve ``shim validate`` (CI, pre-commit) and the server's start-up self-check,
so "validated" and "served" can never mean different things.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shim.contract.signature import tensor_findings
from shim.findings import Finding
from shim.kernelfs import KernelFileError, is_regular_file, read_regular
from shim.protocol.codec import Limits, ProtocolError, decode_request, decode_tensor
from shim.spec.datatypes import from_numpy
from shim.spec.kernel import Kernel, TensorSpec, Tolerance
from shim.spec.schemas import SAMPLE_SCHEMA, describe_expectation, json_path, schema_errors
from shim.strict_json import StrictJSONError, loads_strict

#: Largest golden sample read (the artifact policy's role_limits.sample applies too).
MAX_SAMPLE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class GoldenSample:
    path: Path
    request: dict[str, Any]
    expected: list[dict[str, Any]]
    tolerance: Tolerance


def sample_files(kernel: Kernel) -> list[Path]:
    directory = kernel.samples_dir
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.json") if is_regular_file(p))


def load_samples(kernel: Kernel) -> tuple[list[GoldenSample], list[Finding]]:
    files = sample_files(kernel)
    if not files:
        return [], [Finding(
            "KS301", str(kernel.samples_dir), "", "no golden samples (samples/*.json)",
            expected="at least one sample: a v2 request and its expected outputs",
            fix="add one; `shim init` writes samples/example.json by running the model",
        )]
    samples, findings = [], []
    for path in files:
        try:
            data = loads_strict(read_regular(path, MAX_SAMPLE_BYTES))
        except KernelFileError as exc:
            findings.append(Finding("KS302", str(path), "", f"cannot be read: {exc}",
                                    expected="a regular JSON file", fix="replace it with the sample itself"))
            continue
        except StrictJSONError as exc:
            findings.append(Finding("KS302", str(path), exc.location, f"not valid JSON: {exc}",
                                    expected="a JSON golden sample", fix="fix the JSON syntax"))
            continue
        errors = schema_errors(SAMPLE_SCHEMA, data)
        if errors:
            findings += [
                Finding("KS302", str(path), json_path(e), e.message, expected=describe_expectation(e),
                        fix="match contracts/golden_sample.schema.json")
                for e in errors
            ]
            continue
        tolerance = Tolerance.from_contract(data.get("tolerance"), default=kernel.tolerance)
        samples.append(GoldenSample(path, data["request"], data["expected"]["outputs"], tolerance))
    return samples, findings


def _expected_array(entry: dict[str, Any], kernel: Kernel) -> np.ndarray:
    spec = next((o for o in kernel.outputs if o.name == entry["name"]), None)
    if spec is None:
        raise ProtocolError(f"expected output {entry['name']!r} is not an output of the contract")
    if entry["datatype"] != spec.datatype.name:
        raise ProtocolError(
            f"expected output {spec.name!r} has datatype {entry['datatype']}; the contract declares "
            f"{spec.datatype.name}"
        )
    loose = TensorSpec(spec.name, spec.datatype, tuple(-1 for _ in entry["shape"]), True)
    if spec.datatype.is_float and _holds_non_finite(entry.get("data")):
        if not spec.allow_non_finite:
            raise ProtocolError(
                f"expected output {spec.name!r} holds \"NaN\"/\"Infinity\" values but the contract's output "
                "does not set allow_non_finite"
            )
        entry = {**entry, "data": _non_finite_to_float(entry["data"])}
    return decode_tensor(entry, loose, None, Limits())


#: JSON has no literal for these; the golden sample schema writes them as strings.
_NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _holds_non_finite(data: Any) -> bool:
    if isinstance(data, list):
        return any(_holds_non_finite(item) for item in data)
    return isinstance(data, str) and data in _NON_FINITE


def _non_finite_to_float(data: Any) -> Any:
    if isinstance(data, list):
        return [_non_finite_to_float(item) for item in data]
    return _NON_FINITE.get(data, data) if isinstance(data, str) else data


def _as_bytes(item: Any) -> Any:
    """onnxruntime returns strings as ``str``, the protocol decodes BYTES as ``bytes``: compare as bytes."""
    return item.encode("utf-8") if isinstance(item, str) else item


def check_output_signature(kernel: Kernel, actual: dict[str, np.ndarray], sample: Path) -> list[Finding]:
    """What the model really returned against the declared outputs: datatype, rank and static dims.

    The ONNX graph may leave output shapes symbolic and a TorchScript module declares nothing, so
    only running the model shows whether responses would match the contract clients rely on.
    """
    file = str(kernel.metadata_path)
    findings: list[Finding] = []
    for index, spec in enumerate(kernel.outputs):
        got = actual.get(spec.name)
        if got is None:
            continue  # reported per sample as KS305
        got_type = from_numpy(got.dtype)
        returned = got_type.name if got_type else str(got.dtype)
        findings += tensor_findings(file, f"$.outputs[{index}]", spec, returned, list(got.shape),
                                    observed_in=sample.name)
    return findings


def compare_outputs(sample: GoldenSample, actual: dict[str, np.ndarray], kernel: Kernel) -> list[Finding]:
    findings: list[Finding] = []
    file = str(sample.path)
    for index, entry in enumerate(sample.expected):
        where = f"$.expected.outputs[{index}]"
        name = entry["name"]
        try:
            expected = _expected_array(entry, kernel)
        except ProtocolError as exc:
            findings.append(Finding("KS302", file, where, str(exc), expected="a valid expected output",
                                    fix="correct the expected output"))
            continue
        got = actual.get(name)
        if got is None:
            findings.append(Finding("KS305", file, where, f"the model returned no output {name!r}",
                                    expected=name, fix="check the output names in the contract"))
            continue
        if tuple(got.shape) != tuple(expected.shape):
            findings.append(Finding(
                "KS305", file, f"{where}.shape", f"output {name!r} has shape {list(got.shape)}",
                expected=str(list(expected.shape)), fix="regenerate the sample or fix the model",
            ))
            continue
        if expected.dtype == object or got.dtype == object:
            pairs = zip(map(_as_bytes, got.ravel()), map(_as_bytes, expected.ravel()), strict=True)
            mismatch = [i for i, (a, b) in enumerate(pairs) if a != b]
            if mismatch:
                first = mismatch[0]
                findings.append(Finding(
                    "KS305", file, f"{where}.data[{first}]",
                    f"output {name!r} element {first} is {_as_bytes(got.ravel()[first])!r}",
                    expected=repr(_as_bytes(expected.ravel()[first])),
                    fix="regenerate the sample or fix the model",
                ))
            continue
        got64 = got.astype(np.float64)
        exp64 = expected.astype(np.float64)
        diff = np.abs(got64 - exp64)
        allowed = sample.tolerance.atol + sample.tolerance.rtol * np.abs(exp64)
        # NaN matches NaN and an infinity the same infinity (only where the contract allows them:
        # an expected NaN in an output without allow_non_finite was refused above)
        same_non_finite = (np.isnan(got64) & np.isnan(exp64)) | (np.isinf(exp64) & (got64 == exp64))
        bad = ~(diff <= allowed) & ~same_non_finite
        if bad.any():
            worst = int(np.argmax(np.where(bad, diff, -1).ravel()))
            findings.append(Finding(
                "KS305", file, f"{where}.data[{worst}]",
                f"output {name!r} differs in {int(bad.sum())} of {bad.size} elements; worst at flat index "
                f"{worst}: got {got64.ravel()[worst].item()!r}, expected {exp64.ravel()[worst].item()!r} "
                f"(|diff| {diff.ravel()[worst]:.3g} > atol {sample.tolerance.atol:g} + rtol "
                f"{sample.tolerance.rtol:g} * |expected|)",
                expected=f"{exp64.ravel()[worst].item()!r} within the tolerance",
                fix="if the model changed on purpose, regenerate the sample; else find the regression",
            ))
    return findings


def run_samples(kernel: Kernel, runtime: Any, samples: list[GoldenSample]) -> list[Finding]:
    """Decode, run and compare every sample; one finding per failing aspect."""
    findings: list[Finding] = []
    specs = {t.name: t for t in kernel.inputs}
    output_names = [t.name for t in kernel.outputs]
    limits = Limits(max_batch_size=kernel.batching.max_batch_size)
    signature_reported: set[tuple[str, str]] = set()
    for sample in samples:
        try:
            decoded = decode_request(sample.request, specs, output_names, None, limits)
        except ProtocolError as exc:
            findings.append(Finding(
                "KS303", str(sample.path), "$.request", str(exc),
                expected="a request that satisfies the contract's inputs", fix="correct the sample request",
            ))
            continue
        try:
            actual = runtime.predict(decoded.inputs)
        except Exception as exc:
            findings.append(Finding(
                "KS304", str(sample.path), "$.request",
                f"inference failed: {type(exc).__name__}: {str(exc)[:400]}",
                expected="the model runs on the sample",
                fix="check input dtypes and shapes against the model",
            ))
            continue
        for finding in check_output_signature(kernel, actual, sample.path):
            if (finding.code, finding.path) not in signature_reported:  # once, not once per sample
                signature_reported.add((finding.code, finding.path))
                findings.append(finding)
        findings += compare_outputs(sample, actual, kernel)
    return findings
