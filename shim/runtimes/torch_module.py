"""What every torch runtime shares once its module is loaded: device and threads, numpy <-> tensor
conversion, the positional call, GPU out-of-memory as ``OutOfMemory`` and the CUDA memory figures.

TorchScript and torch.export differ only in how the module is loaded, in which order ``forward``
takes its inputs (``argument_names``) and in how outputs map to the contract's names
(``_outputs_by_name``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from shim.runtimes.base import OutOfMemory, Runtime
from shim.runtimes.device import DeviceRequest, choose_torch_device
from shim.spec.kernel import Kernel


class TorchModuleRuntime(Runtime):
    module: Any
    #: the contract's input names in the order ``forward`` takes them
    argument_names: list[str]

    def __init__(self, kernel: Kernel, torch: Any, request: DeviceRequest, threads: int) -> None:
        super().__init__(kernel)
        self._torch = torch
        self.device = choose_torch_device(request, torch.cuda.is_available(), torch.cuda.device_count())
        self.threads = threads
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        self._torch_device = torch.device(self.device.label)

    def _to_tensor(self, array: np.ndarray) -> Any:
        if not array.flags.writeable or not array.flags.c_contiguous:
            array = np.array(array, copy=True, order="C")
        return self._torch.from_numpy(array).to(self._torch_device, non_blocking=True)

    def _outputs_by_name(self, result: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _call(self, tensors: list[Any]) -> Any:
        return self.module(*tensors)

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        try:
            with torch.inference_mode():
                result = self._call([self._to_tensor(inputs[name]) for name in self.argument_names])
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
