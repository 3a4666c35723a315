"""ONNX models through onnxruntime."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnxruntime as ort

from shim.runtimes.base import OutOfMemory, Runtime, RuntimeLoadError
from shim.runtimes.device import DeviceRequest, choose_onnx_providers
from shim.spec.kernel import Kernel

_OOM_MARKERS = ("out of memory", "cudaErrorMemoryAllocation", "CUDA_ERROR_OUT_OF_MEMORY", "bad_alloc",
                "Failed to allocate memory")  # the last: onnxruntime's CPU/BFC arena allocator


class OnnxRuntime(Runtime):
    framework = "onnx"

    def __init__(self, kernel: Kernel, request: DeviceRequest, threads: int) -> None:
        super().__init__(kernel)
        self.device = choose_onnx_providers(request, ort.get_available_providers())
        self.threads = threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers: list[str | tuple[str, dict[str, str]]] = []
        for name in self.device.detail:
            if name in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
                providers.append((name, {"device_id": str(self.device.index or 0)}))
            else:
                providers.append(name)
        try:
            self.session = ort.InferenceSession(str(kernel.model_path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own C++-backed exception types
            raise RuntimeLoadError(f"onnxruntime could not load {kernel.model_path}: {exc}") from None
        self._string_inputs = {t.name for t in kernel.inputs if t.datatype.is_bytes}

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = dict(inputs)
        for name in self._string_inputs:  # onnxruntime wants str, the protocol carries bytes
            feed[name] = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(feed[name])
        try:
            results = self.session.run(self.output_names, feed)
        except Exception as exc:
            if any(marker in str(exc) for marker in _OOM_MARKERS):
                raise OutOfMemory(str(exc)) from None
            raise
        return dict(zip(self.output_names, results, strict=False))
