"""Triton Inference Server through PyTriton, serving an onnxruntime session as a Python model.

PyTriton bundles a tritonserver binary with the Python backend only (no onnxruntime backend), so
the model is an ``@batch`` Python callable that runs onnxruntime; Triton's HTTP front end and
dynamic batcher do the rest. Run by the benchmark in the pytriton venv.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

options = ort.SessionOptions()
options.intra_op_num_threads = int(os.environ.get("BENCH_THREADS", "1"))
options.inter_op_num_threads = 1
session = ort.InferenceSession(os.environ["BENCH_MODEL_PATH"], options, providers=["CPUExecutionProvider"])
INPUT = session.get_inputs()[0].name
OUTPUT = session.get_outputs()[0].name
ROW_SHAPE = tuple(int(d) for d in os.environ["BENCH_ROW_SHAPE"].split(","))
OUT_SHAPE = tuple(int(d) for d in os.environ["BENCH_OUT_SHAPE"].split(","))


@batch
def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
    return {OUTPUT: session.run(None, {INPUT: inputs[INPUT]})[0]}


def main() -> None:
    port = int(os.environ["BENCH_PORT"])
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=port,
        grpc_address="127.0.0.1",
        grpc_port=port + 1,
        metrics_port=port + 2,
        log_verbose=0,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=os.environ["BENCH_MODEL_NAME"],
            infer_func=infer,
            inputs=[Tensor(name=INPUT, dtype=np.float32, shape=ROW_SHAPE)],
            outputs=[Tensor(name=OUTPUT, dtype=np.float32, shape=OUT_SHAPE)],
            config=ModelConfig(
                max_batch_size=int(os.environ.get("BENCH_MAX_BATCH", "32")),
                batcher=DynamicBatcher(
                    max_queue_delay_microseconds=int(os.environ.get("BENCH_DELAY_US", "0"))
                ),
            ),
            strict=False,
        )
        triton.serve()


if __name__ == "__main__":
    main()
