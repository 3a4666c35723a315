"""torch.export programs (``model.pt2``, ``torch.export.save``) served through ``ExportedProgram.module()``.

``torch.export.load`` deserialises the graph JSON the artifact gate proved and rebuilds the
weights from raw bytes; its sample inputs are a restricted-pickle-proven ``torch.save`` archive.
Calls are positional in ``forward()`` order (an exported module does not take keyword arguments
it was not exported with), so the contract's named inputs are reordered here once.

Compilation is opt-in (server setting ``--torch-compile`` / ``KERNELSHIM_TORCH_COMPILE`` = ``off``
| ``default`` | ``max-autotune``): ``torch.compile(dynamic=True)`` of the module, compiled while the
server loads (the golden samples run before it is ready). Measured on CPU (docs/benchmarks.md,
"torch.export (issue 13)"): 1.4-2.0x faster for a small CNN, 0.7-0.85x (slower) for a tiny MLP
whose call is dominated by Python overhead, at 8-32 s of start-up; so it is off by default and
worth turning on for compute-bound models. AOTInductor packages were faster still but are native
shared libraries, which a kernel may not ship (SECURITY.md).
"""

from __future__ import annotations

import warnings
from typing import Any

from shim.runtimes.base import RuntimeLoadError
from shim.runtimes.device import DeviceRequest
from shim.runtimes.torch_module import TorchModuleRuntime
from shim.spec.kernel import Kernel

COMPILE_ENV = "KERNELSHIM_TORCH_COMPILE"
COMPILE_MODES = ("off", "default", "max-autotune")
TORCH_MISSING = (
    "framework 'torch_export' needs PyTorch, which is not installed; "
    "install it with: pip install 'kernelshim[torch]'"
)


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise RuntimeLoadError(TORCH_MISSING) from None
    return torch


def compile_mode(value: str | None) -> str:
    """The compile mode (None: off); an unknown value is a load error naming the setting."""
    mode = (value or "off").strip().lower()
    if mode not in COMPILE_MODES:
        raise RuntimeLoadError(
            f"--torch-compile / {COMPILE_ENV}={mode[:40]!r} is not one of {', '.join(COMPILE_MODES)}"
        )
    return mode


def load_exported_program(torch: Any, path: str) -> Any:
    """``torch.export.load`` with torch's own chatter (deprecation and version warnings) kept out of
    shim's output: the gate and the contract check report what matters about the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.load(path)


def forward_arg_names(program: Any) -> list[str]:
    """forward()'s argument names in call order (the user inputs of the graph signature)."""
    try:
        names = list(program.module_call_graph[0].signature.forward_arg_names)
    except (AttributeError, IndexError, TypeError):
        names = []
    user_inputs = list(program.graph_signature.user_inputs)
    return names if len(names) == len(user_inputs) else [str(n) for n in user_inputs]


class TorchExportRuntime(TorchModuleRuntime):
    framework = "torch_export"

    def __init__(
        self, kernel: Kernel, request: DeviceRequest, threads: int, compile: str | None = None
    ) -> None:
        torch = import_torch()
        super().__init__(kernel, torch, request, threads)
        self.compile_mode = compile_mode(compile)
        try:
            self.program = load_exported_program(torch, str(kernel.model_path))
            if self.device.kind != "cpu":  # weights, buffers, constants and device-bound graph nodes
                self.program = torch.export.passes.move_to_device_pass(self.program, self._torch_device)
            module = self.program.module()
        except Exception as exc:
            raise RuntimeLoadError(
                f"torch.export.load could not load {kernel.model_path}: {str(exc)[:300]}"
            ) from None
        self.argument_names = forward_arg_names(self.program)
        declared = {t.name for t in kernel.inputs}
        if set(self.argument_names) != declared:
            raise RuntimeLoadError(
                f"forward() takes {', '.join(self.argument_names)}; "
                f"the contract declares {', '.join(sorted(declared))}"
            )
        self.module = module
        if self.compile_mode != "off":
            options = {"dynamic": True} | (
                {"mode": "max-autotune"} if self.compile_mode == "max-autotune" else {}
            )
            self.module = torch.compile(module, **options)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"torch_compile": self.compile_mode}

    def _outputs_by_name(self, result: Any) -> dict[str, Any]:
        """A dict with the declared names by name; anything else (a tensor, tuple, list or nested
        structure) by position of its leaves, in the order torch.export flattened the outputs."""
        if isinstance(result, dict) and all(name in result for name in self.output_names):
            return {name: result[name] for name in self.output_names}
        values = self._torch.utils._pytree.tree_leaves(result)
        if len(values) != len(self.output_names):
            raise ValueError(
                f"the model returned {len(values)} output(s); the contract declares {len(self.output_names)}"
            )
        return dict(zip(self.output_names, values, strict=True))

    def _call(self, tensors: list[Any]) -> Any:
        with warnings.catch_warnings():  # torch's own deprecation chatter from the exported graph
            warnings.simplefilter("ignore")
            return self.module(*tensors)
