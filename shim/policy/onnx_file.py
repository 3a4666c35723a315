"""An ONNX model file must parse as a ModelProto; its external data must be files of the kernel.

ONNX's documented layout allows tensor data in separate files named by each tensor's
``external_data`` location, relative to the model, in the main graph, in subgraphs (If/Loop/Scan
bodies) and in functions. Those files are the only extra files an ONNX kernel may hold. Each must
be a regular file inside the kernel, and must be exactly tensor data: every byte belongs to some
tensor's ``[offset, offset + length)`` except zero padding (``onnx`` aligns data on request).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np
import onnx
from onnx import external_data_helper, helper

#: Largest alignment gap (bytes) between tensors in an external data file that may be zero padding.
MAX_PADDING = 1 << 16


@dataclass
class ExternalData:
    """The external data files an ONNX model names, with the byte ranges each tensor uses."""

    ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    #: (tensor name, location, problem) for references that cannot be honoured
    problems: list[tuple[str, str, str]] = field(default_factory=list)


def iter_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto in the model: initializers and attributes, in all subgraphs and functions."""
    graphs = [model.graph]
    nodes = [node for function in model.functions for node in function.node]
    while graphs or nodes:
        if graphs:
            graph = graphs.pop()
            yield from graph.initializer
            for sparse in graph.sparse_initializer:
                yield sparse.values
                yield sparse.indices
            nodes.extend(graph.node)
            continue
        node = nodes.pop()
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("sparse_tensor"):
                yield attribute.sparse_tensor.values
                yield attribute.sparse_tensor.indices
            if attribute.HasField("g"):
                graphs.append(attribute.g)
            graphs.extend(attribute.graphs)


def _length(tensor: onnx.TensorProto, info: external_data_helper.ExternalDataInfo) -> int | None:
    if info.length is not None:
        return int(info.length)
    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return None
    count = int(np.prod(list(tensor.dims), dtype=np.int64)) if tensor.dims else 1
    return count * itemsize


def external_data(model: onnx.ModelProto, model_dir: PurePosixPath) -> ExternalData:
    """The kernel-relative files the model's tensors read, and any reference that escapes."""
    result = ExternalData()
    for tensor in iter_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        location = info.location or ""
        relative = PurePosixPath(location)
        if not location or relative.is_absolute() or ".." in relative.parts or "\\" in location:
            result.problems.append((tensor.name, location, "is not a plain path inside the kernel"))
            continue
        length = _length(tensor, info)
        offset = int(info.offset or 0)
        if length is None or offset < 0 or length < 0:
            result.problems.append((tensor.name, location, "has no usable offset and length"))
            continue
        key = (model_dir / relative).as_posix()
        result.ranges.setdefault(key, []).append((offset, offset + length))
    return result


def uncovered(ranges: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """Byte ranges of a file of ``size`` bytes that no tensor reads (to be checked for zero padding)."""
    gaps = []
    position = 0
    for start, end in sorted(ranges):
        if start > position:
            gaps.append((position, start))
        position = max(position, end)
    if position < size:
        gaps.append((position, size))
    return gaps
