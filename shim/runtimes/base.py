"""The runtime interface every framework implements, and the loader that picks one.

A runtime takes named numpy arrays that already satisfy the contract (the codec checked them)
and returns named numpy arrays. Batching, HTTP and metrics live elsewhere; a runtime only runs
the model. That split (as in MLServer) keeps each framework adapter a few dozen lines.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from shim.runtimes.cpu_quota import available_cpus
from shim.runtimes.device import DeviceChoice, parse_device
from shim.spec.kernel import Kernel


class RuntimeLoadError(Exception):
    """The model could not be loaded; the message says why and how to fix it."""


class OutOfMemory(Exception):
    """The device ran out of memory while running a batch."""


class Runtime(ABC):
    """A loaded model, ready to run batches."""

    framework: str
    device: DeviceChoice
    threads: int

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.output_names = [t.name for t in kernel.outputs]

    @abstractmethod
    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model once. Raises ``OutOfMemory`` on device memory exhaustion."""

    def describe(self) -> dict[str, Any]:
        """What was chosen and why, for logs and the /v2 server metadata."""
        return {
            "framework": self.framework,
            "device": self.device.label,
            "execution": self.device.detail,
            "fallback_reason": self.device.fallback_reason,
            "threads": self.threads,
        }

    def memory_stats(self) -> dict[str, float]:
        """Device memory figures (bytes) when on a GPU; empty on CPU."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model's resources."""


def load_runtime(kernel: Kernel, device: str = "auto", threads: int | None = None,
                 options: Mapping[str, Any] | None = None) -> Runtime:
    """Load the kernel's model with the runtime for its framework. ``options`` are the server's
    runtime settings (``torch_compile`` for torch.export); runtimes ignore those not theirs."""
    request = parse_device(device)
    threads = threads or available_cpus()
    if kernel.framework == "onnx":
        from shim.runtimes.onnx_runtime import OnnxRuntime

        return OnnxRuntime(kernel, request, threads)
    if kernel.framework == "torch_export":
        from shim.runtimes.torch_export_runtime import TorchExportRuntime

        return TorchExportRuntime(kernel, request, threads, compile=(options or {}).get("torch_compile"))
    if kernel.framework == "torchscript":
        from shim.runtimes.torchscript_runtime import TorchScriptRuntime

        return TorchScriptRuntime(kernel, request, threads)
    raise RuntimeLoadError(f"framework {kernel.framework!r} has no runtime")
