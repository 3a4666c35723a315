"""One declared tensor against what the model has: datatype, rank and each dimension.

The same rules whether the evidence is the ONNX graph (element type and dimensions, symbolic ones
as None) or the arrays a model really returned on a golden sample (for TorchScript the only
evidence): KS203 datatype, KS204 rank, KS205 a static dimension that differs. Only the graph can
say a dimension is dynamic, so only it yields KS206 (dynamic in the model, static in the
contract) and KS207 (static in the model, -1 in the contract); observed sizes satisfy any -1.
"""

from __future__ import annotations

from collections.abc import Sequence

from shim.findings import Finding
from shim.spec.kernel import TensorSpec


def tensor_findings(
    file: str,
    where: str,
    spec: TensorSpec,
    actual_type: str,
    dims: Sequence[int | None],
    observed_in: str | None = None,
    native_type: str | None = None,
) -> list[Finding]:
    """Findings for ``spec`` at JSON path ``where`` of ``file``. ``actual_type`` is the model's
    datatype (a v2 name when it has one; ``native_type`` the framework's own name, for the
    message); ``observed_in`` names the sample whose run produced ``dims``, or None when they come
    from the graph."""
    seen = f" (running {observed_in})" if observed_in else ""
    has = "returned" if observed_in else "has"
    findings: list[Finding] = []
    if actual_type != spec.datatype.name:
        evidence = f"the model {has} {actual_type}{seen}"
        if native_type:
            evidence = f"the model's element type is {native_type}"
        findings.append(
            Finding(
                "KS203",
                file,
                f"{where}.datatype",
                f"{spec.name!r} is declared {spec.datatype.name} but {evidence}",
                expected=actual_type,
                fix=f"set datatype to {actual_type}, or cast the tensor in the model",
            )
        )
    shown = [d if d is not None else -1 for d in dims]
    if len(dims) != len(spec.shape):
        findings.append(
            Finding(
                "KS204",
                file,
                f"{where}.shape",
                f"{spec.name!r} is declared with {len(spec.shape)} dimensions {list(spec.shape)}; "
                f"the model {has} {len(dims)} {shown}{seen}",
                expected=f"{len(dims)} dimensions {shown}",
                fix=f"set shape to {shown}",
            )
        )
        return findings
    for axis, (declared, actual) in enumerate(zip(spec.shape, dims, strict=True)):
        at = f"{where}.shape[{axis}]"
        if actual is None and declared != -1:
            findings.append(
                Finding(
                    "KS206",
                    file,
                    at,
                    f"{spec.name!r} dimension {axis} is dynamic in the model but declared {declared}",
                    expected="-1",
                    fix=f"set shape[{axis}] to -1, or export the model with a fixed dimension",
                )
            )
        elif actual is not None and declared == -1 and observed_in is None:
            findings.append(
                Finding(
                    "KS207",
                    file,
                    at,
                    f"{spec.name!r} dimension {axis} is fixed at {actual} in the model but declared -1",
                    expected=str(actual),
                    fix=f"set shape[{axis}] to {actual}, or export with a dynamic axis",
                )
            )
        elif actual is not None and declared not in (-1, actual):
            findings.append(
                Finding(
                    "KS205",
                    file,
                    at,
                    f"{spec.name!r} dimension {axis} is declared {declared} but the model {has} "
                    f"{actual}{seen}",
                    expected=str(actual),
                    fix=f"set shape[{axis}] to {actual}" + (" (or -1 if it varies)" if observed_in else ""),
                )
            )
    return findings
