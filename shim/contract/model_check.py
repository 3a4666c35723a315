"""Does the model file load, and do the declared tensors equal the real graph?

For ONNX the graph carries names, element types and shapes, so the contract is compared with it
exactly (as Triton's model configuration is checked against the model). A TorchScript module has
no typed signature; its forward() arity is checked here and its types by the golden samples.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import onnx
from onnx.external_data_helper import uses_external_data

from shim.contract.signature import tensor_findings
from shim.findings import Finding
from shim.onnx_skeleton import checker_view, load_skeleton
from shim.policy.onnx_file import iter_tensors
from shim.spec.datatypes import from_onnx, onnx_type_name
from shim.spec.kernel import Kernel
from shim.spec.layout import METADATA_FILE


def _metadata_file(kernel: Kernel) -> str:
    return str(kernel.root / METADATA_FILE)


def check_model_file(kernel: Kernel, artifact_policy: dict[str, Any]) -> list[Finding]:
    """The model file exists, is non-empty and has a name allowed for its framework."""
    file = _metadata_file(kernel)
    allowed = artifact_policy["frameworks"].get(kernel.framework, {}).get("model_files", [])
    findings = []
    if kernel.metadata["model_file"] not in allowed:
        findings.append(Finding(
            "KS102", file, "$.model_file",
            f"{kernel.metadata['model_file']!r} is not an allowed model file name for framework "
            f"{kernel.framework!r}",
            expected=" or ".join(allowed)
            or f"no files: framework {kernel.framework!r} is not allowed by policy",
            fix=f"rename the model to {allowed[0]} and update model_file" if allowed
            else "use an allowed framework",
        ))
    path = kernel.model_path
    if not path.is_file():
        findings.append(Finding(
            "KS101", str(path), "", "model file does not exist",
            expected=f"the file named by model_file ({kernel.metadata['model_file']}) inside the kernel",
            fix="add the exported model or correct model_file",
        ))
    elif path.stat().st_size == 0:
        findings.append(Finding(
            "KS103", str(path), "", "model file is empty (0 bytes)",
            expected="an exported model", fix="re-export the model",
        ))
    return findings


def load_onnx(kernel: Kernel) -> tuple[onnx.ModelProto | None, list[Finding]]:
    """Check the ONNX model fully and return its skeleton (the model without tensor values:
    ``shim.onnx_skeleton``), which is all the contract comparison reads.

    The weights are not read here at all: the checker (``full_check``: shape inference too) sees
    ``checker_view``, in which each large initializer's byte count was proven from its length
    prefix and the tensor stands as a typed graph input; onnxruntime reads every byte once, in the
    sandboxed model run. Parsing a 1 GiB model in C++ only to check it cost ~2.7 s. A model with
    external data (proven by the artifact gate to be inside the kernel and exactly tensor bytes) is
    checked from its path, so the checker resolves the files next to it.
    """
    path = kernel.model_path
    try:
        model = load_skeleton(path)
    except Exception as exc:  # protobuf DecodeError, a malformed wire format
        return None, [Finding(
            "KS103", str(path), "", f"is not a readable ONNX model: {str(exc)[:300]}",
            expected="an ONNX ModelProto (torch.onnx.export, skl2onnx, onnx.save)",
            fix="re-export the model; the file may be truncated or not ONNX",
        )]
    try:
        if any(uses_external_data(tensor) for tensor in iter_tensors(model)):
            onnx.checker.check_model(str(path), full_check=True)  # resolves the files next to it
        else:  # the weights' byte counts proven without copying them into protobuf
            onnx.checker.check_model(checker_view(path), full_check=True)
    except Exception as exc:
        return None, [Finding(
            "KS103", str(path), "", f"fails onnx.checker: {str(exc).strip()[:500]}",
            expected="a model that passes onnx.checker.check_model(full_check=True)",
            fix="re-export the model with a supported opset; check custom operators",
        )]
    return model, []


def _graph_tensors(model: onnx.ModelProto, which: str) -> dict[str, tuple[int, list[int | None] | None]]:
    """name -> (element type, dimensions); dimensions None when the graph declares no shape, element
    type 0 for a value that is not a tensor (a ZipMap's sequence of maps)."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    values = graph.input if which == "inputs" else graph.output
    tensors: dict[str, tuple[int, list[int | None] | None]] = {}
    for value in values:
        if which == "inputs" and value.name in initializers:
            continue
        if value.type.WhichOneof("value") != "tensor_type":
            tensors[value.name] = (0, None)
            continue
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            tensors[value.name] = (tensor_type.elem_type, None)
            continue
        dims: list[int | None] = []
        for dim in tensor_type.shape.dim:
            dims.append(dim.dim_value if dim.HasField("dim_value") else None)
        tensors[value.name] = (tensor_type.elem_type, dims)
    return tensors


#: Output shape findings the graph's declaration alone cannot make errors: onnxruntime does not
#: enforce declared output shapes (exporters do write wrong ones), so what the model really
#: returns, checked on every golden sample, decides; a contradicting declaration is a warning.
_OUTPUT_SHAPE_CODES = {"KS204", "KS205", "KS207"}


def _as_declaration_warning(finding: Finding) -> Finding:
    return replace(finding, severity="warning",
                   message=f"{finding.message} (the graph's declared output shape; the golden samples "
                   "check the shape the model really returns)")


def compare_onnx_signature(kernel: Kernel, model: onnx.ModelProto) -> list[Finding]:
    """Names, element types and dimensions of the contract against the ONNX graph."""
    file = _metadata_file(kernel)
    findings: list[Finding] = []
    for group, specs in (("inputs", kernel.inputs), ("outputs", kernel.outputs)):
        graph = _graph_tensors(model, group)
        for index, spec in enumerate(specs):
            where = f"$.{group}[{index}]"
            if spec.name not in graph:
                findings.append(Finding(
                    "KS201", file, f"{where}.name",
                    f"{group[:-1]} {spec.name!r} is not in the model",
                    expected=f"one of the model's {group}: {', '.join(graph) or '(none)'}",
                    fix="use the graph's tensor name (see `shim init` or netron)",
                ))
                continue
            elem_type, dims = graph[spec.name]
            graph_type, native = from_onnx(elem_type), onnx_type_name(elem_type)
            actual = graph_type.name if graph_type else native
            found = tensor_findings(file, where, spec, actual, dims if dims is not None else spec.shape,
                                    native_type=native)
            if group == "outputs":
                found = [_as_declaration_warning(f) if f.code in _OUTPUT_SHAPE_CODES else f for f in found]
            findings += found
        declared = {s.name for s in specs}
        for name in graph:
            if name not in declared and group == "outputs" and graph[name][0] == 0:
                findings.append(Finding(
                    "KS202", file, "$.outputs",
                    f"the model has output {name!r}, which is not a tensor (a sequence or map, as a "
                    "ZipMap returns) and cannot be carried by the v2 protocol; it is not served",
                    expected="tensor outputs only",
                    fix="re-export without it (skl2onnx: options={id(model): {'zipmap': False}}) to serve "
                    "it as a tensor; the other outputs are served as they are",
                    severity="warning",
                ))
            elif name not in declared:
                findings.append(Finding(
                    "KS202", file, f"$.{group}",
                    f"the model has {group[:-1]} {name!r}, which the contract does not declare",
                    expected=f"every model {group[:-1]} declared", fix=f"add {name!r} to {group}",
                ))
    return findings


def check_torchscript_signature(kernel: Kernel, module: Any) -> list[Finding]:
    """The module's forward() takes exactly the declared inputs."""
    try:
        arguments = [a.name for a in module.forward.schema.arguments][1:]  # drop self
    except AttributeError:
        return []
    file = _metadata_file(kernel)
    declared = [s.name for s in kernel.inputs]
    if len(arguments) > len(declared):
        return [Finding(
            "KS202", file, "$.inputs",
            f"forward() takes {len(arguments)} inputs ({', '.join(arguments)}); the contract declares "
            f"{len(declared)} ({', '.join(declared)})",
            expected=f"{len(arguments)} inputs in forward() order", fix="declare every forward() argument",
        )]
    if len(arguments) < len(declared):
        return [Finding(
            "KS201", file, "$.inputs",
            f"the contract declares {len(declared)} inputs ({', '.join(declared)}); forward() takes "
            f"{len(arguments)} ({', '.join(arguments)})",
            expected=f"{len(arguments)} inputs", fix="remove the inputs forward() does not take",
        )]
    return []


def model_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
