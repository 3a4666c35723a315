"""The kernel: a directory holding a model, its contract, samples and requirements, as typed data.

A ``Kernel`` is built from metadata that already satisfies the contract schema
(``shim.contract.kernel.read_kernel`` does the reading and checking); everything downstream
(validator, runtimes, server, image builder, tfvars) works from this object, so the metadata is
interpreted in one place only. This module is the bottom layer: it imports no other kernelshim
package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shim.spec.datatypes import DATATYPES, DataType
from shim.spec.layout import METADATA_FILE, REQUIREMENTS_FILE, SAMPLES_DIR

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-4


@dataclass(frozen=True)
class TensorSpec:
    """One declared tensor: the explicit contract a request is checked against."""

    name: str
    datatype: DataType
    shape: tuple[int, ...]
    allow_non_finite: bool = False

    @classmethod
    def from_contract(cls, entry: dict[str, Any]) -> TensorSpec:
        return cls(
            name=entry["name"],
            datatype=DATATYPES[entry["datatype"]],
            shape=tuple(entry["shape"]),
            allow_non_finite=bool(entry.get("allow_non_finite", False)),
        )

    def to_v2(self) -> dict[str, Any]:
        """The tensor as the v2 model-metadata endpoint describes it."""
        return {"name": self.name, "datatype": self.datatype.name, "shape": list(self.shape)}


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = 0
    max_queue_delay_us: int = 0

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 0


@dataclass(frozen=True)
class Tolerance:
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL

    @classmethod
    def from_contract(cls, entry: dict[str, Any] | None, default: Tolerance | None = None) -> Tolerance:
        base = default or cls()
        entry = entry or {}
        return cls(atol=float(entry.get("atol", base.atol)), rtol=float(entry.get("rtol", base.rtol)))


@dataclass(frozen=True)
class Kernel:
    """A kernel whose metadata satisfies the contract schema."""

    root: Path
    metadata: dict[str, Any]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batching: Batching
    tolerance: Tolerance
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.metadata["name"]

    @property
    def version(self) -> str:
        return self.metadata["version"]

    @property
    def framework(self) -> str:
        return self.metadata["framework"]

    @property
    def model_path(self) -> Path:
        return self.root / self.metadata["model_file"]

    @property
    def metadata_path(self) -> Path:
        return self.root / METADATA_FILE

    @property
    def requirements_path(self) -> Path:
        return self.root / REQUIREMENTS_FILE

    @property
    def samples_dir(self) -> Path:
        return self.root / SAMPLES_DIR

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)


def kernel_from_metadata(root: Path, metadata: dict[str, Any]) -> Kernel:
    batching = metadata.get("batching") or {}
    return Kernel(
        root=Path(root),
        metadata=metadata,
        inputs=tuple(TensorSpec.from_contract(t) for t in metadata["inputs"]),
        outputs=tuple(TensorSpec.from_contract(t) for t in metadata["outputs"]),
        batching=Batching(
            max_batch_size=int(batching.get("max_batch_size", 0)),
            max_queue_delay_us=int(batching.get("max_queue_delay_us", 0)),
        ),
        tolerance=Tolerance.from_contract(metadata.get("tolerance")),
    )
