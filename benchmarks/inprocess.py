"""The limit: onnxruntime's ``session.run`` called in-process, with the servers' thread settings.

No server can beat it; the table reports each server's latency overhead over it and its
throughput as a fraction of it, at the same batch size.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.models import BenchModel


def session(model_path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def measure(
    model: BenchModel, model_path: Path, threads: int, batch: int, seconds: float
) -> dict[str, float]:
    """p50/p99 of one call and rows per second, for ``batch`` rows per call."""
    sess = session(model_path, threads)
    feed = {model.input_name: model.sample(batch)}
    for _ in range(20):
        sess.run(None, feed)
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(timings) < 50:
        start = time.perf_counter()
        sess.run(None, feed)
        timings.append(time.perf_counter() - start)
    array = np.asarray(timings)
    return {
        "batch": batch,
        "calls": len(timings),
        "p50_us": round(float(np.percentile(array, 50)) * 1e6, 2),
        "p99_us": round(float(np.percentile(array, 99)) * 1e6, 2),
        "rows_per_s": round(batch * len(timings) / float(array.sum()), 1),
    }
