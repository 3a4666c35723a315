"""``shim init``'s model run: find inputs the model accepts and record what it returns, in the
sandboxed child process (``shim.sandbox``), like every other execution of a kernel's model.

Random normal inputs are outside many models' domain: a Log or Sqrt of a negative gives NaN, an
embedding index past the vocabulary is an error, a string model knows only its vocabulary. So
inputs are generated from the graph's hints (index ranges from the embedding tables an integer
input indexes, strings from the vocabularies of the string operators), and a run that raises or
returns NaN/infinity is retried with other value ranges (positive, larger, normal, negative). When
every attempt is non-finite the first is kept and the caller records ``allow_non_finite``; when the
model rejects every attempt (a shape tensor input, a model needing real data) the caller says how
to supply a real input (``--sample``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shim.protocol.codec import tensor_to_json_data
from shim.spec.datatypes import from_numpy, from_torch
from shim.spec.kernel import Kernel, TensorSpec, kernel_from_metadata

#: Float value ranges tried in order: (low, high) uniform, or None for standard normal.
FLOAT_RANGES: list[tuple[float, float] | None] = [
    (0.1, 1.0), (1.0, 2.0), None, (-1.0, -0.1), (0.0, 0.01), (10.0, 100.0)]
#: Integer ranges tried in order, [low, high), each cut to an index range the graph gives.
INT_RANGES = [(0, 4), (1, 5), (0, 2), (0, 1), (2, 10), (0, 100)]
#: (batch, other dynamic dimensions) tried in turn: exporters that trace a model bake the traced
#: sizes into some graphs (a Reshape to the traced sequence length), so sizes vary like values do.
#: Other dynamic dimensions (sequence lengths) share one size, so inputs that must agree do.
SIZES = [(2, 3), (2, 4), (1, 1), (2, 2), (4, 8), (1, 3), (3, 5), (2, 16)]
BATCH = SIZES[0][0]
#: How many generated inputs are tried before the model is declared to reject them.
ATTEMPTS = 16
NON_FINITE_JSON = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def generate_inputs(specs: list[TensorSpec], attempt: int,
                    hints: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
    """Deterministic inputs for ``attempt`` (0, 1, ...): each attempt another value range."""
    rng = np.random.default_rng(attempt)
    batch, other = SIZES[attempt % len(SIZES)]
    arrays = {}
    for spec in specs:
        hint = hints.get(spec.name, {})
        shape = tuple(batch if d == -1 and i == 0 else other if d == -1 else d
                      for i, d in enumerate(spec.shape))
        datatype = spec.datatype
        if datatype.is_float:
            bounds = FLOAT_RANGES[attempt % len(FLOAT_RANGES)]
            values = rng.standard_normal(shape) if bounds is None else rng.uniform(*bounds, size=shape)
            arrays[spec.name] = values.astype(datatype.numpy)
        elif datatype.is_integer:
            low, high = INT_RANGES[attempt % len(INT_RANGES)]
            if "int_values" in hint:
                choices = np.array(hint["int_values"], dtype=np.int64)
                arrays[spec.name] = rng.choice(choices, size=shape).astype(datatype.numpy)
                continue
            if "int_high" in hint:
                high = max(1, min(high, int(hint["int_high"])))
                low = min(low, high - 1)
            if not datatype.name.startswith("INT"):
                low = max(low, 0)
            arrays[spec.name] = rng.integers(low, high, size=shape).astype(datatype.numpy)
        elif datatype.name == "BOOL":
            arrays[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            words = [w for w in hint.get("strings", []) if w] or [f"text-{i}" for i in range(8)]
            array = np.empty(shape, dtype=object)
            count = max(array.size, 1)
            if attempt % 2 == 0:
                items = [words[(i + attempt) % len(words)] for i in range(count)]
            else:
                items = [" ".join(words[(i + j) % len(words)] for j in range(3)) for i in range(count)]
            array.ravel()[:] = [item.encode("utf-8") for item in items[: array.size]]
            arrays[spec.name] = array
    return arrays


def json_data(array: np.ndarray) -> list[Any]:
    """Flat JSON values; NaN and infinities as the strings the golden sample schema defines."""
    datatype = from_numpy(array.dtype)
    if datatype is not None and datatype.is_float and not np.isfinite(array).all():
        return [NON_FINITE_JSON.get(repr(v), v) if not np.isfinite(v) else v
                for v in array.astype(np.float64).ravel().tolist()]
    if datatype is None:
        return [str(item) for item in array.ravel()]
    return tensor_to_json_data(array, datatype)


def _non_finite(results: dict[str, np.ndarray]) -> list[str]:
    """Names of float outputs holding NaN or infinity."""
    return [name for name, array in results.items()
            if array.dtype.kind == "f" and not np.isfinite(array).all()]


def _tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    datatype = from_numpy(array.dtype)
    return {"name": name, "datatype": datatype.name if datatype else str(array.dtype),
            "shape": list(array.shape), "data": json_data(array)}


def _torchscript_module(kernel: Kernel) -> Any:
    import warnings

    from shim.runtimes.torchscript_runtime import import_torch

    torch = import_torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(kernel.model_path), map_location="cpu")


def _torchscript_call(kernel: Kernel, module: Any, arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """A TorchScript module declares no outputs: call it and describe what it returns."""
    import torch

    with torch.inference_mode():
        result = module(*(torch.from_numpy(arrays[s.name]) for s in kernel.inputs))
    values = list(result.values()) if isinstance(result, dict) else (
        list(result) if isinstance(result, (tuple, list)) else [result])
    names = list(result.keys()) if isinstance(result, dict) else (
        ["output"] if len(values) == 1 else [f"output_{i}" for i in range(len(values))])
    outputs = []
    for name, value in zip(names, values, strict=True):
        datatype = from_torch(getattr(value, "dtype", None))
        if datatype is None:
            raise TypeError(f"output {name!r} is a {type(value).__name__} of dtype "
                            f"{getattr(value, 'dtype', '?')}, which the v2 protocol cannot carry")
        outputs.append({"name": str(name), "datatype": datatype.name, "shape": list(value.shape)})
    return outputs


def _from_json(spec: TensorSpec, entry: dict[str, Any]) -> np.ndarray:
    """A supplied input (already decoded against the contract by the parent) back into an array."""
    if spec.datatype.is_bytes:
        array = np.empty(len(entry["data"]), dtype=object)
        array[:] = [str(item).encode("utf-8") for item in entry["data"]]
        return array.reshape(entry["shape"])
    return np.asarray(entry["data"], dtype=spec.datatype.numpy).reshape(entry["shape"])


def _describe_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:500]}"


def run_in_child(payload: dict[str, Any], progress: Callable[[str], None]) -> dict[str, Any]:
    """Try generated (or the supplied) inputs; answer the first finite run, else the first
    non-finite one, else why the model rejected them. A model's failure is an answer, never an
    exception: the sandbox reports exceptions as kernelshim defects."""
    from shim.runtimes.base import load_runtime

    root = Path(payload["root"])
    metadata = json.loads((root / "model_metadata.json").read_text(encoding="utf-8"))
    supplied = payload.get("inputs")
    progress(str(root / metadata["model_file"]))
    kernel = kernel_from_metadata(root, metadata)
    specs = list(kernel.inputs)
    attempts = 1 if supplied is not None else int(payload.get("attempts", ATTEMPTS))
    first_error: str | None = None
    non_finite: dict[str, Any] | None = None
    runtime = None
    module = None
    if kernel.framework == "torchscript":
        try:
            module = _torchscript_module(kernel)
        except Exception as exc:  # the model does not load: its failure, reported as such
            return {"ok": False, "stage": "load", "error": _describe_error(exc)}
    try:
        for attempt in range(attempts):
            if supplied is not None:
                arrays = {s.name: _from_json(s, supplied[s.name]) for s in specs}
            else:
                arrays = generate_inputs(specs, attempt, payload.get("hints") or {})
            try:
                if runtime is None and kernel.framework == "torchscript":
                    outputs = _torchscript_call(kernel, module, arrays)
                    metadata = dict(metadata, outputs=outputs)
                    kernel = kernel_from_metadata(root, metadata)
                    runtime = load_runtime(kernel, device="cpu")
                elif runtime is None:
                    try:
                        runtime = load_runtime(kernel, device="cpu")
                    except Exception as exc:  # the model does not load: its failure, reported as such
                        return {"ok": False, "stage": "load", "error": _describe_error(exc)}
                results = runtime.predict(arrays)
            except Exception as exc:
                first_error = first_error or _describe_error(exc)
                continue
            first = next(iter(arrays.values()))
            answer = {
                "ok": True, "attempt": attempt, "batch": int(first.shape[0]) if first.ndim else 1,
                "inputs": [_tensor(s.name, arrays[s.name]) for s in specs],
                "outputs": [_tensor(o.name, results[o.name]) for o in kernel.outputs],
                "non_finite": _non_finite(results),
            }
            if not answer["non_finite"]:
                return answer
            non_finite = non_finite or answer
    finally:
        if runtime is not None:
            runtime.close()
    if non_finite is not None:
        return non_finite
    return {"ok": False, "stage": "run", "error": first_error or "no attempt ran"}
