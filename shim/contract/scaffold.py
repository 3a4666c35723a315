"""``shim init``: turn a model file into a kernel that is compliant except for what only a
person can know (owner, dataset, cost center), which is marked ``FILL_ME`` so validation fails
until it is filled in.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from shim.protocol.codec import tensor_to_json_data
from shim.spec.datatypes import DATATYPES, from_onnx, onnx_type_name
from shim.spec.kernel import TensorSpec, kernel_from_metadata
from shim.spec.layout import PLACEHOLDER

MODEL_FILES = {
    ".onnx": ("onnx", "model.onnx"),
    ".pt2": ("torch_export", "model.pt2"),
    ".pt": ("torchscript", "model.pt"),
}


class ScaffoldError(Exception):
    """The model or the options cannot produce a kernel; the message says how to fix it.
    ``exit_code`` 2 for wrong options, 1 for a model that cannot be made a kernel."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ModelRejected(ScaffoldError):
    """The kernel was written, but the model could not be run to make its golden sample."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


def parse_tensor_option(text: str) -> dict[str, Any]:
    """``name:DTYPE:SHAPE`` with SHAPE like ``-1x4`` or ``-1,4``."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ScaffoldError(f"--input {text!r}: expected name:DTYPE:SHAPE, e.g. x:FP32:-1x8")
    name, datatype, shape_text = parts
    if datatype.upper() not in DATATYPES:
        raise ScaffoldError(
            f"--input {text!r}: unknown datatype {datatype!r}; use one of {', '.join(DATATYPES)}"
        )
    try:
        shape = [int(d) for d in shape_text.replace("x", ",").split(",") if d]
    except ValueError:
        raise ScaffoldError(
            f"--input {text!r}: shape must be integers separated by x or ',' (-1 = dynamic)"
        ) from None
    if not name or any(d == 0 or d < -1 for d in shape):
        raise ScaffoldError(f"--input {text!r}: needs a name and dimensions that are positive or -1")
    return {"name": name, "datatype": datatype.upper(), "shape": shape}


#: Operators whose attributes list the strings (or integers) a string/categorical input may hold.
_VOCABULARY_ATTRIBUTES = ("keys_strings", "pool_strings", "cats_strings", "classlabels_strings",
                          "keys_int64s", "cats_int64s", "pool_int64s")
#: Operators an input passes through unchanged in value (a Cast, a Reshape) before it is used.
_PASS_THROUGH = {"Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Expand"}


class GraphInfo:
    """What ``shim init`` reads from an ONNX graph: the declared tensors, hints for generating
    inputs in the model's domain, the outputs whose shape the graph does not declare, and notes."""

    def __init__(self) -> None:
        self.inputs: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []
        self.hints: dict[str, dict[str, Any]] = {}
        self.unknown_shapes: set[str] = set()
        self.notes: list[str] = []


def _input_hints(model: Any, name: str) -> dict[str, Any]:
    """Index ranges and vocabularies for input ``name``: an integer input indexing an embedding
    table (Gather on an initializer) stays below the table's rows; a string or categorical input
    takes values from the vocabulary attributes of the operators that read it."""
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    reached, frontier = {name}, [name]
    consumers = []
    while frontier:
        value = frontier.pop()
        for node in graph.node:
            if value in node.input:
                consumers.append((node, list(node.input).index(value)))
                if node.op_type in _PASS_THROUGH and node.output[0] not in reached:
                    reached.add(node.output[0])
                    frontier.append(node.output[0])
    hints: dict[str, Any] = {}
    for node, position in consumers:
        if node.op_type == "Gather" and position == 1 and node.input[0] in initializers:
            table = initializers[node.input[0]]
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            if table.dims and axis < len(table.dims):
                high = int(table.dims[axis])
                hints["int_high"] = min(hints.get("int_high", high), high)
        for attribute in node.attribute:
            if attribute.name in _VOCABULARY_ATTRIBUTES and attribute.name.endswith("_strings"):
                words = [w.decode("utf-8", "replace") for w in attribute.strings[:64]]
                hints.setdefault("strings", []).extend(w for w in words if w)
            elif attribute.name in _VOCABULARY_ATTRIBUTES and attribute.ints:
                hints.setdefault("int_values", []).extend(int(v) for v in attribute.ints[:64])
    for node in graph.node:  # a tokenizer chain: the vocabulary sits on a later TfIdfVectorizer
        if "strings" not in hints and node.op_type == "TfIdfVectorizer":
            words = [w.decode("utf-8", "replace") for w in next(
                (a.strings for a in node.attribute if a.name == "pool_strings"), [])[:64]]
            if words:
                hints["strings"] = [w for w in words if w]
    return hints


def onnx_graph_info(path: Path) -> GraphInfo:
    from shim.onnx_skeleton import load_skeleton

    try:  # names, types, shapes and initializer dims; never the values (seconds per GiB)
        model = load_skeleton(path)
    except Exception as exc:
        raise ScaffoldError(f"{path}: not a readable ONNX model: {str(exc)[:300]}", exit_code=1) from None
    initializers = {t.name for t in model.graph.initializer}
    info = GraphInfo()
    for group, values in (("inputs", model.graph.input), ("outputs", model.graph.output)):
        for value in values:
            if value.name in initializers and group == "inputs":
                continue
            kind = value.type.WhichOneof("value")
            if kind != "tensor_type":
                if group == "outputs":
                    info.notes.append(
                        f"output {value.name!r} is a {kind.replace('_type', '')} (as a ZipMap returns), "
                        "which the v2 protocol cannot carry; it is left out of the contract and not "
                        "served (skl2onnx: convert with options={id(model): {'zipmap': False}} to get "
                        "the probabilities as a tensor)")
                    continue
                raise ScaffoldError(
                    f"{path}: input {value.name!r} is a {kind}, which the v2 protocol cannot carry; "
                    "export the model with tensor inputs", exit_code=1)
            tensor_type = value.type.tensor_type
            datatype = from_onnx(tensor_type.elem_type)
            if datatype is None:
                raise ScaffoldError(
                    f"{path}: tensor {value.name!r} has element type "
                    f"{onnx_type_name(tensor_type.elem_type)}, which the v2 protocol cannot carry",
                    exit_code=1)
            shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
            if group == "outputs" and not tensor_type.HasField("shape"):
                info.unknown_shapes.add(value.name)
            getattr(info, group).append({"name": value.name, "datatype": datatype.name, "shape": shape})
            if group == "inputs":
                hints = _input_hints(model, value.name)
                if hints:
                    info.hints[value.name] = hints
    if not info.outputs:
        raise ScaffoldError(f"{path}: the model has no tensor output the v2 protocol can carry", exit_code=1)
    return info


def onnx_signature(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    info = onnx_graph_info(path)
    return info.inputs, info.outputs


def example_inputs(specs: list[TensorSpec], batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic inputs: dynamic dimensions become ``batch``; integers stay small (indices)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in specs:
        shape = tuple(batch if d == -1 else d for d in spec.shape)
        dt = spec.datatype
        if dt.is_float:
            arrays[spec.name] = rng.standard_normal(shape).astype(dt.numpy)
        elif dt.is_integer:
            arrays[spec.name] = rng.integers(0, 4, size=shape).astype(dt.numpy)
        elif dt.name == "BOOL":
            arrays[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            array = np.empty(shape, dtype=object)
            array.ravel()[:] = [f"text-{i}".encode() for i in range(array.size)]
            arrays[spec.name] = array
    return arrays


def _tensor_json(spec: TensorSpec, array: np.ndarray) -> dict[str, Any]:
    from shim.contract.scaffold_run import json_data

    return {
        "name": spec.name,
        "shape": list(array.shape),
        "datatype": spec.datatype.name,
        "data": json_data(array) if spec.datatype.is_float else tensor_to_json_data(array, spec.datatype),
    }


def golden_sample(inputs: list[TensorSpec], outputs: list[TensorSpec], arrays: dict[str, np.ndarray],
                  results: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "description": "Generated by running the model; regenerate when the model changes on purpose.",
        "request": {"inputs": [_tensor_json(s, arrays[s.name]) for s in inputs]},
        "expected": {"outputs": [_tensor_json(s, results[s.name]) for s in outputs]},
    }


def _existing_init(destination: Path, model: Path, model_file: str) -> bool:
    """Whether ``destination`` is what an earlier ``shim init`` left when the model rejected the
    generated inputs (its contract and this very model, no sample yet): ``--sample`` completes it."""
    names = {p.name for p in destination.iterdir()}
    if not names <= {"model_metadata.json", model_file, "samples"}:
        return False
    if (destination / "samples").exists() and any((destination / "samples").iterdir()):
        return False
    copied = destination / model_file
    return copied.is_file() and copied.stat().st_size == model.stat().st_size and \
        copied.read_bytes() == model.read_bytes()


def read_sample_option(texts: list[str], inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """``--sample`` values as the request inputs the child runs: one request.json (a v2 inference
    request body, or a golden sample holding one under "request"), or .npy files (``file.npy`` for
    a model with one input, ``name=file.npy`` per input). Decoded against the contract here, in the
    parent, which executes nothing: .npy files are read with ``allow_pickle=False``."""
    from shim.protocol.codec import Limits, ProtocolError, decode_request
    from shim.strict_json import StrictJSONError, loads_strict

    specs = {t["name"]: TensorSpec.from_contract(t) for t in inputs}
    if len(texts) == 1 and texts[0].lower().endswith(".json"):
        path = Path(texts[0])
        try:
            body = loads_strict(path.read_bytes())
        except (OSError, StrictJSONError) as exc:
            raise ScaffoldError(f"--sample {path}: cannot be read as JSON ({exc})") from None
        if isinstance(body, dict) and isinstance(body.get("request"), dict):
            body = body["request"]
    else:
        entries = []
        for text in texts:
            name, _, file = text.rpartition("=") if "=" in text else ("", "", text)
            if not name:
                if len(specs) != 1:
                    raise ScaffoldError(f"--sample {text}: the model has {len(specs)} inputs "
                                        f"({', '.join(specs)}); give each as --sample NAME=FILE.npy")
                name = next(iter(specs))
            if name not in specs:
                raise ScaffoldError(f"--sample {text}: the model has no input {name!r}; its inputs are "
                                    f"{', '.join(specs)}")
            try:
                array = np.load(file, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ScaffoldError(f"--sample {text}: not a readable .npy array without pickled objects "
                                    f"({str(exc)[:200]})") from None
            spec = specs[name]
            if spec.datatype.is_bytes and array.dtype.kind in "US":
                array = np.array([str(v) if array.dtype.kind == "U" else v.decode("utf-8", "replace")
                                  for v in array.ravel()], dtype=object).reshape(array.shape)
            entries.append({"name": name, "datatype": spec.datatype.name, "shape": list(array.shape),
                            "data": tensor_to_json_data(array, spec.datatype)
                            if spec.datatype.is_bytes else array.ravel().tolist()})
        body = {"inputs": entries}
    try:
        decoded = decode_request(body, specs, [], None, Limits())
    except ProtocolError as exc:
        raise ScaffoldError(f"--sample: {exc}") from None
    missing = [name for name in specs if name not in decoded.inputs]
    if missing:
        raise ScaffoldError(f"--sample: no value for input(s) {', '.join(missing)}")
    return {name: {"datatype": specs[name].datatype.name, "shape": list(array.shape),
                   "data": tensor_to_json_data(array, specs[name].datatype)}
            for name, array in decoded.inputs.items()}


def _reconcile_outputs(declared: list[dict[str, Any]], observed: list[dict[str, Any]], batch: int | None,
                       unknown: set[str], notes: list[str]) -> list[dict[str, Any]]:
    """The contract's outputs: the graph's declaration where the run agrees with it, else what the
    model really returned (onnxruntime does not enforce declared output shapes; exporters do write
    wrong ones). -1 stays where the graph says a dimension varies; a returned batch (``batch``
    rows, when the inputs are batched) is -1."""
    seen = {o["name"]: o for o in observed}
    outputs = []
    for entry in declared:
        got = seen[entry["name"]]
        shape, actual = list(entry["shape"]), list(got["shape"])
        fits = len(shape) == len(actual) and all(d in (-1, a) for d, a in zip(shape, actual, strict=True))
        if entry["name"] in unknown or not fits:
            if len(shape) == len(actual):
                new = [-1 if d == -1 else a for d, a in zip(shape, actual, strict=True)]
            else:
                new = actual
            if batch is not None and new and actual[0] == batch:
                new[0] = -1
            if entry["name"] not in unknown:
                notes.append(f"output {entry['name']!r}: the graph declares shape {shape} but the model "
                             f"returned {actual} on the generated inputs; the contract says {new}, taken "
                             "from the run")
            shape = new
        datatype = entry["datatype"]
        if got["datatype"] != datatype and got["datatype"] in DATATYPES:
            notes.append(f"output {entry['name']!r}: the graph declares {datatype} but the model returned "
                         f"{got['datatype']}; the contract says {got['datatype']}")
            datatype = got["datatype"]
        outputs.append({**entry, "datatype": datatype, "shape": shape})
    return outputs


def _run_model(destination: Path, metadata: dict[str, Any], hints: dict[str, Any],
               supplied: dict[str, Any] | None) -> dict[str, Any]:
    """The model's run in the sandboxed child (``shim.contract.scaffold_run``)."""
    from shim.policy.loader import load_policies
    from shim.sandbox import Budget, SandboxFailure, run_isolated

    budget = Budget.from_policy(load_policies().artifact["sample_run"])
    payload = {"root": str(destination.absolute()), "hints": hints, "inputs": supplied}
    try:
        return run_isolated("shim.contract.scaffold_run:run_in_child", payload, budget)
    except SandboxFailure as exc:
        return {"ok": False, "stage": "run", "error": f"running the model {exc}"}


def _supply_hint(destination: Path, name: str, model: Path, inputs: list[dict[str, Any]]) -> str:
    listed = ", ".join(f"{t['name']} ({t['datatype']} {t['shape']})" for t in inputs)
    return (f"supply a real input: `shim init {name} --model {model} --dir {destination} --sample "
            f"request.json` (a v2 inference request body with inputs {listed}) or `--sample "
            f"{'NAME=' if len(inputs) > 1 else ''}input.npy` per input; the kernel written so far is kept")


def scaffold_kernel(
    name: str,
    model: Path,
    destination: Path,
    inputs: list[dict[str, Any]] | None = None,
    fields: dict[str, Any] | None = None,
    max_batch_size: int = 0,
    sample: list[str] | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Create ``destination`` as a kernel for ``model``. ``fields`` fill or override metadata.

    The model runs only in the sandboxed child. ``notes`` collects what a person should know (an
    output whose declared shape the run contradicted, outputs left out, non-finite outputs).
    Raises ``ModelRejected`` (after writing the kernel) when the model cannot be run on generated
    inputs, nor on ``sample``.
    """
    notes = notes if notes is not None else []
    suffix = model.suffix.lower()
    if suffix not in MODEL_FILES:
        raise ScaffoldError(
            f"{model}: unknown model type {suffix!r}; use .onnx, torch.export .pt2 or TorchScript .pt"
        )
    if not model.is_file():
        raise ScaffoldError(f"{model}: no such file")
    framework, model_file = MODEL_FILES[suffix]
    hints: dict[str, Any] = {}
    unknown: set[str] = set()
    if framework == "onnx":
        if inputs:
            raise ScaffoldError("--input is only for TorchScript; ONNX inputs are read from the graph")
        info = onnx_graph_info(model)
        inputs, outputs, hints, unknown = info.inputs, info.outputs, info.hints, info.unknown_shapes
        notes += info.notes
    elif framework == "torch_export":
        from shim.contract.scaffold_torch_export import torch_export_signature

        inputs, outputs = torch_export_signature(model, inputs)
    else:
        if not inputs:
            raise ScaffoldError(
                "TorchScript models carry no typed signature: give each input as --input name:DTYPE:SHAPE"
            )
        outputs = [{"name": "output", "datatype": "FP32", "shape": [-1]}]  # replaced by the run
        unknown = {"output"}
    supplied = read_sample_option(sample, inputs) if sample else None
    reusable = destination.exists() and _existing_init(destination, model, model_file)
    if destination.exists() and any(destination.iterdir()) and not reusable:
        raise ScaffoldError(f"{destination}: already exists and is not empty")
    destination.mkdir(parents=True, exist_ok=True)
    if not (destination / model_file).exists():
        shutil.copyfile(model, destination / model_file)
    metadata: dict[str, Any] = {
        "contract_version": "1",
        "name": name,
        "version": "0.1.0",
        "framework": framework,
        "model_file": model_file,
        "description": f"{PLACEHOLDER}: what the model does",
        "inputs": inputs,
        "outputs": outputs,
        "created_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "created_by": f"{PLACEHOLDER}: your e-mail",
        "training_dataset": f"{PLACEHOLDER}: URI of the training data version",
        "cost_center": f"{PLACEHOLDER}",
    }
    if max_batch_size:
        metadata["batching"] = {"max_batch_size": max_batch_size, "max_queue_delay_us": 500}
    metadata.update(fields or {})
    metadata_path = destination / "model_metadata.json"
    metadata_path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")

    answer = _run_model(destination, metadata, hints, supplied)
    if not answer.get("ok"):
        if answer.get("stage") == "load":
            what = "the model cannot be loaded" + (" by onnxruntime" if framework == "onnx" else "")
        elif supplied:
            what = "the model rejected the supplied --sample"
        else:
            what = ("the model rejected every generated input (a shape or index input, or a model that "
                    "needs real data?)")
        hint = "" if answer.get("stage") == "load" else "; " + _supply_hint(destination, name, model, inputs)
        raise ModelRejected(f"{destination}: written without a golden sample: {what}: "
                            f"{str(answer.get('error'))[:600]}{hint}")
    batched = any(t["shape"] and t["shape"][0] == -1 for t in inputs)
    batch = int(answer.get("batch", 0)) if batched else None
    if framework != "torchscript":  # the graph or program declares its outputs
        outputs = _reconcile_outputs(outputs, answer["outputs"], batch, unknown, notes)
    else:
        described = [{k: o[k] for k in ("name", "datatype", "shape")} for o in answer["outputs"]]
        outputs = _reconcile_outputs(described, answer["outputs"], batch, {o["name"] for o in described},
                                     notes)
    for entry in outputs:
        if entry["name"] in answer["non_finite"]:
            entry["allow_non_finite"] = True
            notes.append(f"output {entry['name']!r} is NaN or infinite on every generated input; the "
                         "contract allows it (allow_non_finite) and the sample writes such values as "
                         "\"NaN\"/\"Infinity\"/\"-Infinity\"; check the model, or give a real input with "
                         "--sample")
    metadata["outputs"] = outputs
    metadata_path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    sample_json = {
        "description": "Generated by running the model; regenerate when the model changes on purpose."
        if supplied is None else "The supplied input and what the model returned for it.",
        "request": {"inputs": answer["inputs"]},
        "expected": {"outputs": answer["outputs"]},
    }
    (destination / "samples").mkdir(exist_ok=True)
    (destination / "samples" / "example.json").write_text(json.dumps(sample_json, indent=1) + "\n",
                                                          encoding="utf-8")
    return destination


def write_golden_sample(destination: Path, metadata: dict[str, Any], seed: int = 0) -> Path:
    """Run the model (through the kernel's handler, if any, as served) on deterministic inputs and
    store request + outputs as samples/example.json."""
    from shim.runtimes.base import load_runtime
    from shim.runtimes.handler import with_handler

    kernel = kernel_from_metadata(destination, metadata)
    runtime = with_handler(load_runtime(kernel, device="cpu"), kernel)
    arrays = example_inputs(list(kernel.inputs), seed=seed)
    results = runtime.predict(arrays)
    sample = golden_sample(list(kernel.inputs), list(kernel.outputs), arrays, results)
    (destination / "samples").mkdir(exist_ok=True)
    path = destination / "samples" / "example.json"
    path.write_text(json.dumps(sample, indent=1) + "\n", encoding="utf-8")
    return path
