"""``shim init`` for torch.export archives: the signature comes from the program, no ``--input``.

Kept apart from ``shim.contract.scaffold`` so the ONNX/TorchScript scaffolding and this one change
independently. The signature is read from the archive's program JSON (the same reader the
validator uses), so ``init`` and ``validate`` cannot disagree about names, dtypes or dynamic dims.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shim.contract.scaffold import ScaffoldError
from shim.contract.torch_export_signature import ExportSignatureError, ExportTensor, read_signature
from shim.policy.torch_export_archive import graph_of


def _declare(tensor: ExportTensor, path: Path) -> dict[str, Any]:
    if tensor.datatype is None:
        raise ScaffoldError(
            f"{path}: tensor {tensor.name!r} has dtype {tensor.native}, which the v2 protocol cannot carry"
        )
    return {
        "name": tensor.name,
        "datatype": tensor.datatype.name,
        "shape": [-1 if d is None else d for d in tensor.dims],
    }


def torch_export_signature(path: Path, inputs: list[dict[str, Any]] | None) -> tuple[list[dict], list[dict]]:
    """(inputs, outputs) of the contract for the torch.export archive at ``path``."""
    if inputs:
        raise ScaffoldError(
            "--input is only for TorchScript; torch.export inputs are read from the exported program"
        )
    try:
        signature = read_signature(graph_of(str(path)))
    except (OSError, ValueError, KeyError) as exc:  # ExportSignatureError is a ValueError
        kind = "" if isinstance(exc, ExportSignatureError) else "is not a readable torch.export archive: "
        raise ScaffoldError(f"{path}: {kind}{str(exc)[:300]}") from None
    declared_outputs = [_declare(t, path) for t in signature.outputs]
    if not signature.named_outputs:  # graph node names (add_1) mean nothing to a client
        for index, output in enumerate(declared_outputs):
            output["name"] = "output" if len(declared_outputs) == 1 else f"output_{index}"
    return [_declare(t, path) for t in signature.inputs], declared_outputs
