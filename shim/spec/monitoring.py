"""Monitoring as typed data: the contract's ``monitoring`` block, the feature layout of the inputs,
and the training profile (``profile.json``).

One module interprets these so that ``shim profile`` (which writes the profile), the validator
(which checks it against the contract) and the server (which tests served rows against it) all
agree on what a feature is: column ``index`` of an input's last axis, a whole rank-1 input, or a
declared per-row summary statistic of a high-dimensional input (an image's per-channel mean).
``feature_columns`` is the one function that turns request arrays into per-feature columns; the
profiler and the server both call it, so reference and live values are computed the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shim.spec.kernel import Kernel, TensorSpec

PROFILE_VERSION = "1"
DEFAULT_PROFILE_BYTES = 2 * 1024 * 1024
_GROUP = re.compile(r"^(?P<name>.+)\[(?P<count>[1-9][0-9]*)\]$")


@dataclass(frozen=True)
class Window:
    rows: int = 1000
    seconds: float | None = None
    min_rows: int = 30


@dataclass(frozen=True)
class Expected:
    accuracy: float | None = None
    mae: float | None = None
    output: str | None = None
    tolerance: float = 0.05
    window: int = 1000


@dataclass(frozen=True)
class MonitoringSpec:
    """The contract's ``monitoring`` block with its defaults applied."""

    profile: str
    tests: dict[str, str] = field(default_factory=dict)
    window: Window = Window()
    level: float = 0.01
    correction: str = "benjamini-hochberg"
    windows_in_a_row: int = 3
    sample_fraction: float = 1.0
    psi_threshold: float = 0.25
    outputs: dict[str, str] = field(default_factory=dict)
    summaries: tuple[dict[str, Any], ...] = ()
    expected: Expected = Expected()
    feedback_max_entries: int = 100_000
    feedback_ttl_s: float = 3600.0

    @classmethod
    def from_contract(cls, block: dict[str, Any]) -> MonitoringSpec:
        window = block.get("window") or {}
        expected = block.get("expected") or {}
        feedback = block.get("feedback") or {}
        return cls(
            profile=block["profile"],
            tests=dict(block.get("tests") or {}),
            window=Window(
                int(window.get("rows", 1000)), window.get("seconds"), int(window.get("min_rows", 30))
            ),
            level=float(block.get("level", 0.01)),
            correction=block.get("correction", "benjamini-hochberg"),
            windows_in_a_row=int(block.get("windows_in_a_row", 3)),
            sample_fraction=float(block.get("sample_fraction", 1.0)),
            psi_threshold=float(block.get("psi_threshold", 0.25)),
            outputs=dict(block.get("outputs") or {}),
            summaries=tuple(block.get("summaries") or ()),
            expected=Expected(
                expected.get("accuracy"),
                expected.get("mae"),
                expected.get("output"),
                float(expected.get("tolerance", 0.05)),
                int(expected.get("window", 1000)),
            ),
            feedback_max_entries=int(feedback.get("max_entries", 100_000)),
            feedback_ttl_s=float(feedback.get("ttl_seconds", 3600.0)),
        )


def monitoring_of(kernel: Kernel) -> MonitoringSpec | None:
    block = kernel.metadata.get("monitoring")
    return MonitoringSpec.from_contract(block) if isinstance(block, dict) else None


# -- features ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSource:
    """Where one monitored feature comes from in a request."""

    name: str
    input: str
    index: int | None = None  # column of the last axis; None: the whole (rank-1) input
    statistic: str | None = None  # "mean"/"std" of the row (per channel when channel is set)
    channel_axis: int | None = None
    channel: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"input": self.input, "index": self.index}
        if self.statistic:
            data = {"input": self.input, "statistic": self.statistic}
            if self.channel_axis is not None:
                data.update(channel_axis=self.channel_axis, channel=self.channel)
        return data


class FeatureLayoutError(ValueError):
    """The contract's feature names do not fit its tensors; the message says which and why."""


def expand_names(names: list[str]) -> list[str]:
    """``["a", "hist[3]"]`` -> ``["a", "hist[0]", "hist[1]", "hist[2]"]``."""
    out: list[str] = []
    for entry in names:
        match = _GROUP.match(entry)
        if match:
            out += [f"{match['name']}[{i}]" for i in range(int(match["count"]))]
        else:
            out.append(entry)
    return out


def input_features(spec: TensorSpec, declared: list[str] | None) -> list[FeatureSource]:
    """The per-column features of one input: its declared names, or ``input[i]`` for a rank-2 input."""
    shape = spec.shape
    if len(shape) == 1:
        name = expand_names(declared)[0] if declared else spec.name
        return [FeatureSource(name, spec.name, None)]
    if len(shape) != 2:
        if declared:
            raise FeatureLayoutError(
                f"input {spec.name!r} has rank {len(shape)}; a features list names the columns of a "
                "rank-2 input ([rows, columns]); monitor higher-rank inputs with monitoring.summaries"
            )
        return []
    width = shape[-1]
    if declared:
        names = expand_names(declared)
        if width != -1 and len(names) != width:
            raise FeatureLayoutError(
                f"input {spec.name!r}: features names {len(names)} columns but the last dimension is {width}"
            )
        if len(set(names)) != len(names):
            raise FeatureLayoutError(f"input {spec.name!r}: features repeats a name")
        return [FeatureSource(n, spec.name, i) for i, n in enumerate(names)]
    if width == -1:
        return []  # unknown width and no names: not monitored per column
    if width > 4096:
        return []
    return [FeatureSource(f"{spec.name}[{i}]", spec.name, i) for i in range(width)]


def feature_layout(kernel: Kernel, monitoring: MonitoringSpec | None = None) -> list[FeatureSource]:
    """Every monitored feature of the kernel, in contract order; raises ``FeatureLayoutError``."""
    monitoring = monitoring if monitoring is not None else monitoring_of(kernel)
    sources: list[FeatureSource] = []
    for entry, spec in zip(kernel.metadata["inputs"], kernel.inputs, strict=True):
        if spec.datatype.is_bytes and len(spec.shape) > 1 and not entry.get("features"):
            continue
        sources += input_features(spec, entry.get("features"))
    for summary in monitoring.summaries if monitoring else ():
        spec = kernel.input(summary["input"])
        if spec is None:
            raise FeatureLayoutError(
                f"monitoring.summaries {summary['name']!r} names input "
                f"{summary['input']!r}, which the contract does not declare"
            )
        axis = summary.get("channel_axis")
        if axis is None:
            sources.append(FeatureSource(summary["name"], spec.name, None, summary["statistic"]))
            continue
        if axis >= len(spec.shape) or spec.shape[axis] in (-1,) or spec.shape[axis] > 64:
            raise FeatureLayoutError(
                f"monitoring.summaries {summary['name']!r}: channel_axis {axis} of input {spec.name!r} "
                f"(shape {list(spec.shape)}) must be a static dimension of at most 64 channels"
            )
        sources += [
            FeatureSource(f"{summary['name']}[{c}]", spec.name, None, summary["statistic"], axis, c)
            for c in range(spec.shape[axis])
        ]
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise FeatureLayoutError(f"feature name {dup!r} is used twice")
    return sources


def feature_columns(sources: list[FeatureSource], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per feature, one value per row of ``inputs`` (rows = the first axis)."""
    columns: dict[str, np.ndarray] = {}
    for source in sources:
        array = inputs.get(source.input)
        if array is None:
            continue
        if array.ndim == 0:
            array = array.reshape(1)
        if source.statistic is not None:
            values = np.asarray(array, dtype=np.float64)
            if source.channel_axis is not None:
                values = np.take(values, source.channel, axis=source.channel_axis)
            flat = values.reshape(values.shape[0], -1)
            columns[source.name] = flat.mean(axis=1) if source.statistic == "mean" else flat.std(axis=1)
        elif source.index is None:
            columns[source.name] = array.reshape(array.shape[0], -1)[:, 0]
        elif array.ndim >= 2 and source.index < array.shape[-1]:
            columns[source.name] = array.reshape(-1, array.shape[-1])[:, source.index]
    return columns


def output_values(kind: str, array: np.ndarray) -> np.ndarray | None:
    """The monitored value per row of one output: the label, the top probability or the value."""
    if array.ndim == 0:
        array = array.reshape(1)
    if kind == "probability":
        return array.reshape(array.shape[0], -1).max(axis=1).astype(np.float64)
    return array.reshape(array.shape[0], -1)[:, 0]


def detect_output_kind(spec: TensorSpec, values: np.ndarray) -> str | None:
    """label (integer/text class per row), probability (rows of probabilities summing to 1) or value."""
    if values.size == 0:
        return None
    per_row = int(np.prod(values.shape[1:])) if values.ndim > 1 else 1
    if spec.datatype.is_bytes or values.dtype.kind in "iub":
        return "label" if per_row == 1 else None
    if values.dtype.kind != "f":
        return None
    if per_row == 1:
        return "value"
    flat = values.reshape(values.shape[0], -1).astype(np.float64)
    finite = flat[np.isfinite(flat).all(axis=1)]
    if (
        len(finite)
        and (finite >= -1e-6).all()
        and (finite <= 1 + 1e-6).all()
        and np.allclose(finite.sum(axis=1), 1.0, atol=1e-3)
    ):
        return "probability"
    return None


# -- profile -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A feature's or output's reference distribution."""

    type: str  # "sample", "quantiles" or "counts"
    values: np.ndarray | None = None  # sample / quantiles (float64)
    n: int = 0
    ks_bound: float = 0.0
    categories: tuple[str, ...] = ()
    counts: np.ndarray | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reference:
        if data["type"] == "counts":
            return cls(
                "counts",
                categories=tuple(data["categories"]),
                counts=np.asarray(data["counts"], dtype=np.int64),
                n=int(sum(data["counts"])),
            )
        values = np.sort(np.asarray(data["values"], dtype=np.float64))
        if data["type"] == "sample":
            return cls("sample", values, len(values))
        return cls("quantiles", values, int(data["n"]), float(data["ks_bound"]))


@dataclass(frozen=True)
class ProfiledFeature:
    name: str
    source: dict[str, Any]
    kind: str
    count: int
    missing_rate: float
    non_finite_rate: float
    reference: Reference


@dataclass(frozen=True)
class ProfiledOutput:
    name: str
    kind: str
    count: int
    non_finite_rate: float
    reference: Reference


@dataclass(frozen=True)
class Profile:
    """A profile that satisfies contracts/profile.schema.json."""

    model_name: str
    model_version: str
    rows: int
    features: tuple[ProfiledFeature, ...]
    outputs: tuple[ProfiledOutput, ...]
    document: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        return cls(
            model_name=data["model"]["name"],
            model_version=data["model"]["version"],
            rows=int(data["rows"]),
            features=tuple(
                ProfiledFeature(
                    f["name"],
                    f["source"],
                    f["kind"],
                    f["count"],
                    f["missing_rate"],
                    f["non_finite_rate"],
                    Reference.from_json(f["reference"]),
                )
                for f in data["features"]
            ),
            outputs=tuple(
                ProfiledOutput(
                    o["name"],
                    o["kind"],
                    o["count"],
                    o["non_finite_rate"],
                    Reference.from_json(o["reference"]),
                )
                for o in data["outputs"]
            ),
            document=data,
        )


def category_key(value: Any) -> str:
    """The profile's text name of one category value (labels 0/1/2, True/False, text)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")[:256]
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)[:256]


def category_counts(values: np.ndarray) -> dict[str, int]:
    """Frequencies by category name (np.unique on the values, names made once per distinct value)."""
    if values.dtype.kind == "O":
        values = np.array([category_key(v) for v in values.ravel()], dtype=str)
    unique, counts = np.unique(values, return_counts=True)
    out: dict[str, int] = {}
    for value, count in zip(unique.tolist(), counts.tolist(), strict=True):
        key = category_key(value)
        out[key] = out.get(key, 0) + int(count)
    return out
