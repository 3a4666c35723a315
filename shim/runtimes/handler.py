"""The kernel's optional pre/post-processing handler, run around the model on every batch.

``preprocessing.handler`` names a Python file in the kernel that defines ``preprocess(inputs)``
and/or ``postprocess(outputs)``, each taking and returning a mapping of tensor names to numpy
arrays. The handler changes values, never the contract: its results keep the declared names,
datatypes, ranks and static dimensions, and the batch dimension (dynamic batching splits the
outputs back by rows). It runs wherever the model runs (``shim serve``, and the golden samples of
``shim validate``), so the golden samples prove it; the static checks never import it.

Wrapping a runtime (rather than teaching every framework adapter about handlers) keeps the
adapters model-only, as in MLServer's split between a model runtime and its codecs.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shim.kernelfs import MAX_HANDLER_BYTES, KernelFileError, read_regular
from shim.runtimes.base import Runtime
from shim.spec.datatypes import from_numpy
from shim.spec.kernel import Kernel, TensorSpec

Tensors = Mapping[str, np.ndarray]


class HandlerLoadError(Exception):
    """The handler file could not be imported; the message names the file and the error."""


class HandlerFailure(Exception):
    """The handler raised, or returned something that breaks the contract."""


def handler_file(kernel: Kernel) -> Path | None:
    name = (kernel.metadata.get("preprocessing") or {}).get("handler")
    return kernel.root / name if name else None


def with_handler(runtime: Runtime, kernel: Kernel) -> Runtime:
    """``runtime`` itself when the kernel has no handler, else the runtime wrapped in it."""
    path = handler_file(kernel)
    return runtime if path is None else HandledRuntime(runtime, kernel, path)


def _import(path: Path, kernel: Kernel) -> Any:
    """Compile the handler from its source text and run it as a fresh module.

    Never through the import system: ``importlib`` would prefer a ``__pycache__/*.pyc`` whose header
    matches the source's size and mtime, i.e. code nobody reviewed. The source is read through
    ``read_regular`` (no links), compiled with ``compile()`` and executed; no bytecode is written.
    """
    module_name = f"kernelshim_handler_{kernel.name.replace('-', '_')}"
    try:
        source = read_regular(path, MAX_HANDLER_BYTES)
        code = compile(source, str(path), "exec", dont_inherit=True)
    except KernelFileError as exc:
        raise HandlerLoadError(f"{path}: {exc}") from None
    except (SyntaxError, ValueError) as exc:
        raise HandlerLoadError(f"{path}: is not valid Python: {exc}") from None
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    sys.modules[module_name] = module  # so the handler's own dataclasses can find their module
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise HandlerLoadError(f"{path}: importing the handler failed: {type(exc).__name__}: {exc}") from None
    return module


class HandledRuntime(Runtime):
    """A runtime with the kernel's ``preprocess``/``postprocess`` around each execution."""

    def __init__(self, inner: Runtime, kernel: Kernel, path: Path) -> None:
        super().__init__(kernel)
        self.inner = inner
        self.path = path
        module = _import(path, kernel)
        self._preprocess: Callable[[Tensors], Tensors] | None = getattr(module, "preprocess", None)
        self._postprocess: Callable[[Tensors], Tensors] | None = getattr(module, "postprocess", None)
        for name, function in (("preprocess", self._preprocess), ("postprocess", self._postprocess)):
            if function is not None and not callable(function):
                raise HandlerLoadError(f"{path}: {name} is not a function")
        if self._preprocess is None and self._postprocess is None:
            raise HandlerLoadError(f"{path}: defines neither preprocess nor postprocess")
        self.framework, self.device, self.threads = inner.framework, inner.device, inner.threads

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._preprocess is not None:
            inputs = self._call("preprocess", self._preprocess, inputs, self.kernel.inputs)
        outputs = self.inner.predict(inputs)
        if self._postprocess is not None:
            outputs = self._call("postprocess", self._postprocess, outputs, self.kernel.outputs)
        return dict(outputs)

    def _call(self, stage: str, function: Callable[[Tensors], Tensors], tensors: Tensors,
              specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
        try:
            result = function(dict(tensors))
        except Exception as exc:
            raise HandlerFailure(f"{self.path.name}: {stage} raised {type(exc).__name__}: {exc}") from None
        rows = {name: array.shape[0] for name, array in tensors.items() if array.ndim}
        return _checked(result, specs, rows, self.kernel.batching.enabled, f"{self.path.name}: {stage}")

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "handler": self.path.name}

    def memory_stats(self) -> dict[str, float]:
        return self.inner.memory_stats()

    def close(self) -> None:
        self.inner.close()


def _checked(result: Any, specs: Sequence[TensorSpec], rows: Mapping[str, int], batched: bool,
             where: str) -> dict[str, np.ndarray]:
    """The handler's result, if it keeps the contract; else a HandlerFailure saying what broke."""
    if not isinstance(result, Mapping):
        raise HandlerFailure(f"{where} returned {type(result).__name__}; it must return a dict of "
                             "tensor name -> numpy array")
    expected = [spec.name for spec in specs]
    if set(result) != set(expected):
        raise HandlerFailure(f"{where} returned tensors {sorted(result)}; the contract declares {expected}")
    batch = next(iter(rows.values()), None)
    checked: dict[str, np.ndarray] = {}
    for spec in specs:
        array = result[spec.name]
        if not isinstance(array, np.ndarray):
            raise HandlerFailure(f"{where}: {spec.name!r} is a {type(array).__name__}, not a numpy array")
        if from_numpy(array.dtype) != spec.datatype:
            raise HandlerFailure(f"{where}: {spec.name!r} has dtype {array.dtype}; the contract declares "
                                 f"{spec.datatype.name} (cast it with .astype(np.{spec.datatype.numpy}))")
        if array.ndim != len(spec.shape) or any(
            declared not in (-1, size) for size, declared in zip(array.shape, spec.shape, strict=False)
        ):
            raise HandlerFailure(f"{where}: {spec.name!r} has shape {list(array.shape)}; the contract "
                                 f"declares {list(spec.shape)} (-1 = any)")
        if batched and batch is not None and array.ndim and array.shape[0] != batch:
            raise HandlerFailure(f"{where}: {spec.name!r} has {array.shape[0]} rows for a batch of {batch}; "
                                 "a handler must keep one row per input row")
        checked[spec.name] = array
    return checked
