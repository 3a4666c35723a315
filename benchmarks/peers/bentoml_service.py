"""A BentoML service wrapping onnxruntime, as BentoML's documentation shows (1.4 ``@bentoml.service``).

The API is batchable with the same maximum batch size as the kernelshim kernel, so BentoML's
adaptive batching gets the same chance as kernelshim's dynamic batching. Run by the benchmark as
``bentoml serve benchmarks.peers.bentoml_service:OnnxService`` in the bentoml venv.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np

MAX_BATCH = int(os.environ.get("BENCH_MAX_BATCH", "32"))
MAX_LATENCY_MS = int(os.environ.get("BENCH_MAX_LATENCY_MS", "100"))


@bentoml.service(workers=1)
class OnnxService:
    def __init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("BENCH_THREADS", "1"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.environ["BENCH_MODEL_PATH"], options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: inputs.astype(np.float32, copy=False)})[0]
