"""TorchScript models (``torch.jit.save`` archives) through torch.jit.load: the legacy path.

torch 2.13 deprecates TorchScript ("`torch.jit.load` is deprecated. Please switch to
`torch.export`"); kernels keep working, and that warning is kept out of shim's output
(``load_torchscript``): the README says once that torch.export is the path forward.
"""

from __future__ import annotations

import warnings
from typing import Any

from shim.runtimes.base import RuntimeLoadError
from shim.runtimes.device import DeviceRequest
from shim.runtimes.torch_module import TorchModuleRuntime
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


class TorchScriptRuntime(TorchModuleRuntime):
    framework = "torchscript"

    def __init__(self, kernel: Kernel, request: DeviceRequest, threads: int) -> None:
        torch = import_torch()
        super().__init__(kernel, torch, request, threads)
        try:
            self.module = load_torchscript(torch, str(kernel.model_path), self._torch_device)
        except Exception as exc:
            raise RuntimeLoadError(f"torch.jit.load could not load {kernel.model_path}: {exc}") from None
        self.module.eval()
        self.argument_names = [t.name for t in kernel.inputs]

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
