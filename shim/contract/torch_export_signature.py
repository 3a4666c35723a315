"""The signature of a torch.export program, read from its JSON graph, against the contract.

``torch.export.load`` deserialises the program (and unpickles its sample inputs), so it only runs
in the sandboxed model-run child. The signature does not need it: the artifact gate
(``shim.policy.torch_export_archive``) proved ``models/model.json`` is strict JSON in torch's
layout, and that JSON *is* the ExportedProgram's signature: ``graph_signature`` user inputs and
outputs, each tensor's dtype and sizes (``as_int`` static, ``as_expr`` symbolic) and the
``range_constraints`` of every symbol. Reading it statically lets the validator compare names,
dtypes and dimensions in the parent process, like the ONNX graph, with the same rules
(``shim.contract.signature``).

Names: inputs are the ``forward()`` argument names. Outputs are named when ``forward()`` returns a
dict (its keys); otherwise torch names them after graph nodes (``add_1``), which mean nothing to a
client, so outputs are then matched by position and the contract names them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from shim.contract.signature import tensor_findings
from shim.findings import Finding
from shim.policy.torch_export_archive import graph_of
from shim.spec.datatypes import DataType, from_export_scalar_type
from shim.spec.kernel import Kernel
from shim.spec.layout import METADATA_FILE

_SYMBOL = re.compile(r"Symbol\('([A-Za-z_][A-Za-z0-9_]*)'[^()]*\)\Z")


class ExportSignatureError(ValueError):
    """The program JSON does not describe a signature the v2 protocol can serve; says why."""


@dataclass(frozen=True)
class ExportTensor:
    name: str
    datatype: DataType | None
    native: str
    dims: tuple[int | None, ...]
    #: per dimension: (min, max) of a dynamic one (max None = unbounded), None for static ones
    ranges: tuple[tuple[int, int | None] | None, ...]


@dataclass(frozen=True)
class ExportSignature:
    inputs: tuple[ExportTensor, ...]
    outputs: tuple[ExportTensor, ...]
    #: False when outputs carry graph node names only (matched by position)
    named_outputs: bool


def read_signature(program: dict[str, Any]) -> ExportSignature:
    """The user inputs and outputs of a serialised ExportedProgram (``models/model.json``).
    Any JSON at all yields a signature or ``ExportSignatureError``, never another exception."""
    try:
        return _read_signature(program)
    except ExportSignatureError:
        raise
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        raise ExportSignatureError(
            f"has a program JSON torch.export.save does not write ({type(exc).__name__} reading it)"
        ) from None


def _read_signature(program: dict[str, Any]) -> ExportSignature:
    try:
        module = program["graph_module"]
        graph, signature = module["graph"], module["signature"]
        values = graph["tensor_values"]
        ranges = program.get("range_constraints") or {}
        call = (module.get("module_call_graph") or [{}])[0].get("signature") or {}
    except (KeyError, TypeError, IndexError, AttributeError):
        raise ExportSignatureError("has no graph_module with graph, signature and tensor_values") from None
    user_inputs = _user_args(signature.get("input_specs"), "user_input")
    user_outputs = _user_args(signature.get("output_specs"), "user_output")
    arg_names = call.get("forward_arg_names")
    input_names = (
        arg_names
        if isinstance(arg_names, list)
        and len(arg_names) == len(user_inputs)
        and all(isinstance(n, str) for n in arg_names)
        else user_inputs
    )
    output_names = _dict_keys(call.get("out_spec"), len(user_outputs))
    inputs = tuple(_tensor(n, values.get(v), ranges) for n, v in zip(input_names, user_inputs, strict=True))
    outputs = tuple(
        _tensor(n, values.get(v), ranges)
        for n, v in zip(output_names or user_outputs, user_outputs, strict=True)
    )
    return ExportSignature(inputs, outputs, output_names is not None)


def _user_args(specs: Any, kind: str) -> list[str]:
    if not isinstance(specs, list):
        raise ExportSignatureError("has no input_specs/output_specs list in its graph signature")
    names = []
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict) or kind not in spec:
            continue
        arg = (spec[kind] or {}).get("arg") if isinstance(spec[kind], dict) else None
        tensor = arg.get("as_tensor") if isinstance(arg, dict) else None
        if not (isinstance(tensor, dict) and isinstance(tensor.get("name"), str)):
            shown = next(iter(arg), "?") if isinstance(arg, dict) else "?"
            raise ExportSignatureError(
                f"{kind.replace('_', ' ')} {index} is not a tensor ({shown[:40]}); "
                "the v2 protocol carries tensors only"
            )
        names.append(tensor["name"])
    return names


def _dict_keys(out_spec: Any, count: int) -> list[str] | None:
    """The keys when forward() returns a flat dict of tensors, else None."""
    try:
        spec = json.loads(out_spec)[1] if isinstance(out_spec, str) else None
        if not (isinstance(spec, dict) and spec.get("type") == "builtins.dict"):
            return None
        keys = json.loads(spec["context"])
        leaves = all(c.get("type") is None for c in spec["children_spec"])
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    if leaves and isinstance(keys, list) and len(keys) == count and all(isinstance(k, str) for k in keys):
        return keys
    return None


def _tensor(name: str, meta: Any, ranges: dict[str, Any]) -> ExportTensor:
    if not isinstance(meta, dict) or not isinstance(meta.get("sizes"), list):
        raise ExportSignatureError(f"has no tensor metadata for {name[:60]!r}")
    datatype, native = from_export_scalar_type(meta.get("dtype"))
    dims: list[int | None] = []
    bounds: list[tuple[int, int | None] | None] = []
    for size in meta["sizes"]:
        if isinstance(size, dict) and type(size.get("as_int")) is int:
            dims.append(size["as_int"])
            bounds.append(None)
            continue
        expr = ((size or {}).get("as_expr") or {}).get("expr_str") if isinstance(size, dict) else None
        match = _SYMBOL.match(expr) if isinstance(expr, str) else None
        constraint = ranges.get(match.group(1)) if match else None
        low = constraint.get("min_val") if isinstance(constraint, dict) else None
        high = constraint.get("max_val") if isinstance(constraint, dict) else None
        dims.append(None)
        bounds.append((low if type(low) is int else 0, high if type(high) is int else None))
    return ExportTensor(name, datatype, native, tuple(dims), tuple(bounds))


def load_signature(kernel: Kernel, json_depth: int = 64) -> ExportSignature:
    """The signature of the kernel's model.pt2 (gate-proven); ``ExportSignatureError`` if unusable."""
    try:
        program = graph_of(str(kernel.model_path), json_depth=json_depth)
    except (OSError, ValueError, KeyError) as exc:
        raise ExportSignatureError(f"program JSON is unreadable: {str(exc)[:200]}") from None
    return read_signature(program)


def check_torch_export_signature(kernel: Kernel, json_depth: int = 64) -> list[Finding]:
    """Names, datatypes and dimensions of the contract against the exported program."""
    file = str(kernel.root / METADATA_FILE)
    try:
        signature = load_signature(kernel, json_depth)
    except ExportSignatureError as exc:
        return [
            Finding(
                "KS110",
                str(kernel.model_path),
                "",
                f"torch.export program {exc}",
                expected="a program exported with tensor inputs and outputs (torch.export.export)",
                fix="export forward() with tensor arguments and tensor (or dict of tensor) results",
            )
        ]
    findings = _compare(file, "inputs", kernel.inputs, signature.inputs, by_name=True)
    findings += _compare(file, "outputs", kernel.outputs, signature.outputs, by_name=signature.named_outputs)
    findings += _range_findings(kernel, file, signature)
    return findings


def _compare(
    file: str, group: str, specs: tuple, tensors: tuple[ExportTensor, ...], by_name: bool
) -> list[Finding]:
    findings: list[Finding] = []
    names = [t.name for t in tensors]
    if not by_name and len(specs) != len(tensors):
        code = "KS202" if len(tensors) > len(specs) else "KS201"
        return [
            Finding(
                code,
                file,
                f"$.{group}",
                f"the model returns {len(tensors)} {group}; the contract declares {len(specs)}",
                expected=f"{len(tensors)} {group}, in the order forward() returns them",
                fix=f"declare exactly {len(tensors)} {group}",
            )
        ]
    by = {t.name: t for t in tensors}
    for index, spec in enumerate(specs):
        where = f"$.{group}[{index}]"
        tensor = by.get(spec.name) if by_name else tensors[index]
        if tensor is None:
            findings.append(
                Finding(
                    "KS201",
                    file,
                    f"{where}.name",
                    f"{group[:-1]} {spec.name!r} is not in the model",
                    expected=f"one of the model's {group}: {', '.join(names) or '(none)'}",
                    fix="use forward()'s argument names"
                    if group == "inputs"
                    else "use the keys forward() returns",
                )
            )
            continue
        actual = tensor.datatype.name if tensor.datatype else tensor.native
        findings += tensor_findings(file, where, spec, actual, tensor.dims, native_type=tensor.native)
    if by_name:
        declared = {s.name for s in specs}
        findings += [
            Finding(
                "KS202",
                file,
                f"$.{group}",
                f"the model has {group[:-1]} {name!r}, which the contract does not declare",
                expected=f"every model {group[:-1]} declared",
                fix=f"add {name!r} to {group}",
            )
            for name in names
            if name not in declared
        ]
    return findings


def _range_findings(kernel: Kernel, file: str, signature: ExportSignature) -> list[Finding]:
    """A -1 admits any size >= 1 and batching merges up to max_batch_size rows: the exported
    program's range for that dimension must allow both, or such requests fail at run time."""
    findings = []
    tensors = {t.name: t for t in signature.inputs}
    for index, spec in enumerate(kernel.inputs):
        tensor = tensors.get(spec.name)
        if tensor is None or len(tensor.ranges) != len(spec.shape):
            continue
        for axis, bound in enumerate(tensor.ranges):
            if bound is None or spec.shape[axis] != -1:
                continue
            low, high = bound
            need = kernel.batching.max_batch_size if axis == 0 and kernel.batching.enabled else 1
            problem = None
            if low > 2:  # torch writes min 2 for an unbounded Dim and still accepts 0 and 1
                problem = f"accepts sizes from {low} only, but a request may send 1"
            elif high is not None and high < need:
                problem = (
                    f"accepts sizes up to {high} only, but batching merges up to {need} (max_batch_size)"
                )
            if problem:
                findings.append(
                    Finding(
                        "KS111",
                        file,
                        f"$.inputs[{index}].shape[{axis}]",
                        f"{spec.name!r} dimension {axis} is dynamic in the exported program but {problem}",
                        expected=f"a range covering 1..{need}",
                        fix=f"export with torch.export.Dim(min=1, max>={need}), "
                        "or lower batching.max_batch_size",
                    )
                )
    return findings
