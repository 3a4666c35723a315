"""TorchScript models (``torch.jit.save`` archives) through torch.jit.load: the legacy path.

torch 2.13 deprecates TorchScript ("`torch.jit.load` is deprecated. Please switch to
`torch.export`"); kernels keep working, and that warning is kept out of shim's output
(``load_torchscript``): the README says once that torch.export is the path forward.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from shim.runtimes.base import OutOfMemory, Runtime, RuntimeLoadError
from shim.runtimes.device import DeviceRequest, choose_torch_device
from shim.spec.kernel import Kernel

TORCH_MISSING = (
    "framework 'torchscript' needs PyTorch, which is not installed; "
    "install it with: pip install 'kernelshim[torch]'"
)


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise RuntimeLoadError(TORCH_MISSING) from None
    return torch


def load_torchscript(torch: Any, path: str, map_location: Any) -> Any:
    """``torch.jit.load`` without torch's deprecation warnings leaking into shim's output."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
        return torch.jit.load(path, map_location=map_location)


class TorchScriptRuntime(Runtime):
    framework = "torchscript"

    def __init__(self, kernel: Kernel, request: DeviceRequest, threads: int) -> None:
        super().__init__(kernel)
        torch = self._torch = import_torch()
        self.device = choose_torch_device(request, torch.cuda.is_available(), torch.cuda.device_count())
        self.threads = threads
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        self._torch_device = torch.device(self.device.label)
        try:
            self.module = load_torchscript(torch, str(kernel.model_path), self._torch_device)
        except Exception as exc:
            raise RuntimeLoadError(f"torch.jit.load could not load {kernel.model_path}: {exc}") from None
        self.module.eval()
        self.input_names = [t.name for t in kernel.inputs]

    def _to_tensor(self, array: np.ndarray) -> Any:
        if not array.flags.writeable or not array.flags.c_contiguous:
            array = np.array(array, copy=True, order="C")
        return self._torch.from_numpy(array).to(self._torch_device, non_blocking=True)

    def _outputs_by_name(self, result: Any) -> dict[str, Any]:
        if isinstance(result, dict):
            missing = [n for n in self.output_names if n not in result]
            if missing:
                raise ValueError(f"the model returned keys {sorted(result)}; the contract declares {missing}")
            return {name: result[name] for name in self.output_names}
        values = list(result) if isinstance(result, (tuple, list)) else [result]
        if len(values) != len(self.output_names):
            raise ValueError(
                f"the model returned {len(values)} output(s); the contract declares {len(self.output_names)}"
            )
        return dict(zip(self.output_names, values, strict=False))

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        try:
            with torch.inference_mode():
                result = self.module(*(self._to_tensor(inputs[name]) for name in self.input_names))
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            raise OutOfMemory(str(exc)) from None
        return {name: value.detach().cpu().numpy() for name, value in self._outputs_by_name(result).items()}

    def memory_stats(self) -> dict[str, float]:
        if self.device.kind != "cuda":
            return {}
        torch = self._torch
        index = self.device.index or 0
        return {
            "allocated": float(torch.cuda.memory_allocated(index)),
            "reserved": float(torch.cuda.memory_reserved(index)),
        }
