"""One table mapping the v2 protocol's datatype names to numpy and ONNX element types.

Every conversion in kernelshim goes through this table so the contract, the validator, the
codec and the runtimes can never disagree about what "FP32" means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto


@dataclass(frozen=True)
class DataType:
    name: str
    numpy: np.dtype
    onnx: int
    torch_name: str | None

    @property
    def is_float(self) -> bool:
        return self.numpy.kind == "f"

    @property
    def is_integer(self) -> bool:
        return self.numpy.kind in "iu"

    @property
    def is_bytes(self) -> bool:
        return self.name == "BYTES"

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize


def _dt(name: str, np_type: str | type, onnx_type: int, torch_name: str | None) -> DataType:
    return DataType(name, np.dtype(np_type), onnx_type, torch_name)


DATATYPES: dict[str, DataType] = {
    d.name: d
    for d in (
        _dt("BOOL", np.bool_, TensorProto.BOOL, "bool"),
        _dt("UINT8", np.uint8, TensorProto.UINT8, "uint8"),
        _dt("UINT16", np.uint16, TensorProto.UINT16, "uint16"),
        _dt("UINT32", np.uint32, TensorProto.UINT32, "uint32"),
        _dt("UINT64", np.uint64, TensorProto.UINT64, "uint64"),
        _dt("INT8", np.int8, TensorProto.INT8, "int8"),
        _dt("INT16", np.int16, TensorProto.INT16, "int16"),
        _dt("INT32", np.int32, TensorProto.INT32, "int32"),
        _dt("INT64", np.int64, TensorProto.INT64, "int64"),
        _dt("FP16", np.float16, TensorProto.FLOAT16, "float16"),
        _dt("FP32", np.float32, TensorProto.FLOAT, "float32"),
        _dt("FP64", np.float64, TensorProto.DOUBLE, "float64"),
        _dt("BYTES", np.object_, TensorProto.STRING, None),
    )
}

_BY_ONNX = {d.onnx: d for d in DATATYPES.values()}
_BY_TORCH = {d.torch_name: d for d in DATATYPES.values() if d.torch_name}


def from_onnx(elem_type: int) -> DataType | None:
    """The v2 datatype of an ONNX element type, or None if the protocol has no equivalent."""
    return _BY_ONNX.get(elem_type)


def onnx_type_name(elem_type: int) -> str:
    known = elem_type in TensorProto.DataType.values()
    return TensorProto.DataType.Name(elem_type) if known else str(elem_type)


def from_torch(dtype: object) -> DataType | None:
    """The v2 datatype of a torch dtype (``torch.float32`` -> FP32)."""
    return _BY_TORCH.get(str(dtype).removeprefix("torch."))


#: torch._export.serde.schema.ScalarType (the "dtype" numbers of a torch.export program's JSON) ->
#: torch dtype name; the serialised schema is versioned by torch, so this table is stable per schema.
EXPORT_SCALAR_TYPES: dict[int, str] = {
    1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float16", 7: "float32", 8: "float64",
    9: "complex32", 10: "complex64", 11: "complex128", 12: "bool", 13: "bfloat16", 28: "uint16",
    29: "float8_e4m3fn", 30: "float8_e5m2", 31: "float8_e4m3fnuz", 32: "float8_e5m2fnuz",
    33: "float8_e8m0fnu", 34: "uint32", 35: "uint64",
}


def from_export_scalar_type(code: object) -> tuple[DataType | None, str]:
    """The v2 datatype of a torch.export JSON dtype number, and torch's own name for the message."""
    name = EXPORT_SCALAR_TYPES.get(code) if type(code) is int else None
    return (_BY_TORCH.get(name) if name else None), (name or f"unknown dtype {str(code)[:20]}")


def from_numpy(dtype: np.dtype) -> DataType | None:
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return DATATYPES["BYTES"]
    for candidate in DATATYPES.values():
        if candidate.numpy == dtype:
            return candidate
    return None
