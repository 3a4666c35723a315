"""Device selection: which accelerator a runtime uses, and why.

Pure functions over what the installed build offers, so the decision is unit-tested on a CPU
machine. ``auto`` falls back to CPU with a reason; an explicit ``cuda`` request that cannot be
met is an error, because silently serving a GPU model on CPU hides a broken node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


class DeviceError(ValueError):
    """The requested device cannot be used."""


@dataclass(frozen=True)
class DeviceRequest:
    kind: str  # auto | cpu | cuda
    index: int | None = None


@dataclass(frozen=True)
class DeviceChoice:
    kind: str  # cpu | cuda
    index: int | None
    detail: list[str]  # e.g. the execution providers in priority order
    fallback_reason: str | None = None

    @property
    def label(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


def parse_device(text: str) -> DeviceRequest:
    match = _DEVICE_RE.match(text.strip().lower())
    if not match or (match.group(1) != "cuda" and match.group(2) is not None):
        raise DeviceError(f"unknown device {text!r}; use auto, cpu, cuda or cuda:N")
    index = int(match.group(2)) if match.group(2) is not None else None
    return DeviceRequest(match.group(1), index)


def choose_onnx_providers(request: DeviceRequest, available: list[str]) -> DeviceChoice:
    """Pick onnxruntime execution providers: TensorRT, then CUDA, then CPU, as allowed."""
    gpu_providers = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
    if request.kind == "cpu":
        return DeviceChoice("cpu", None, ["CPUExecutionProvider"])
    if gpu_providers:
        index = request.index or 0
        return DeviceChoice("cuda", index, [*gpu_providers, "CPUExecutionProvider"])
    reason = (
        "this onnxruntime build offers no CUDA or TensorRT execution provider "
        f"(available: {', '.join(available) or 'none'}); install kernelshim[gpu] (onnxruntime-gpu)"
    )
    if request.kind == "cuda":
        raise DeviceError(f"--device {request.kind} requested but {reason}")
    return DeviceChoice("cpu", None, ["CPUExecutionProvider"], fallback_reason=reason)


def choose_torch_device(request: DeviceRequest, cuda_available: bool, device_count: int) -> DeviceChoice:
    """Pick the torch device for TorchScript models."""
    if request.kind == "cpu":
        return DeviceChoice("cpu", None, ["cpu"])
    if cuda_available and device_count > 0:
        index = request.index or 0
        if index >= device_count:
            raise DeviceError(f"--device cuda:{index} requested but only {device_count} CUDA device(s) exist")
        return DeviceChoice("cuda", index, [f"cuda:{index}"])
    reason = "torch reports no usable CUDA device (torch.cuda.is_available() is False)"
    if request.kind == "cuda":
        raise DeviceError(f"--device {request.kind} requested but {reason}")
    return DeviceChoice("cpu", None, ["cpu"], fallback_reason=reason)
