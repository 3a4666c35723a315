"""Validator and start-up timings: ``shim validate`` on a large generated ONNX model (cold and
again unchanged), and the time from launching ``shim serve`` to a 200 on /v2/health/ready.

The large model (default 1 GiB: one float32 MatMul weight) is generated into the results work
directory on demand and never committed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.models import METADATA, MODELS
from benchmarks.systems import RunningServer, ServerFailed, kernelshim_launch
from shim.contract.scaffold import scaffold_kernel, write_golden_sample

SHIM = str(Path(sys.executable).parent / "shim")


def big_kernel(work: Path, gib: float) -> Path:
    """A kernel around an ONNX model whose single weight is ``gib`` GiB (reused when present)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    width = 4096
    depth = max(1, int(gib * 2**30 / (width * 4)))
    kernel = work / "kernels" / f"big-{depth}x{width}"
    if (kernel / "model_metadata.json").is_file():
        return kernel
    weight = np.random.default_rng(0).standard_normal((depth, width), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", depth])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    del weight
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx_path = work / "onnx" / "big.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(onnx_path))
    del model, graph
    scaffold_kernel("big-matmul", onnx_path, kernel, max_batch_size=4)
    onnx_path.unlink()
    path = kernel / "model_metadata.json"
    metadata = json.loads(path.read_text())
    metadata.update(METADATA)
    metadata["description"] = "Generated large MatMul model for validator timings."
    metadata["resources"] = {"cpu": "2", "memory": "4Gi", "gpu": 0}
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    write_golden_sample(kernel, metadata)
    return kernel


def _timed(command: list[str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    return time.perf_counter() - started, done.returncode, (done.stdout + done.stderr).strip()[-300:]


def hook_cache_command(kernel: Path) -> list[str]:
    """The pre-commit hook's validation: staged files in, kernels found, results cached by hash."""
    return [SHIM, "hook", "validate", str(kernel / "model_metadata.json"), str(kernel / "model.onnx")]


def serve_to_ready(kernel: Path, port: int, work: Path, threads: int = 1) -> float:
    """Seconds from starting ``shim serve`` (the benchmark's own launch of it) to ready."""
    server = RunningServer(kernelshim_launch(MODELS["mlp"], kernel, port, threads, work), port,
                           work / "logs" / f"startup-{kernel.name}.log")
    try:
        return server.wait_ready(300)
    finally:
        server.stop()


def raw_costs(model: Path) -> dict[str, float]:
    """The floor a validator cannot beat by much: one ``onnx.load`` and one SHA-256 pass over the
    same file, each in this process (the file is in the page cache like the validator's)."""
    import hashlib

    import onnx

    started = time.perf_counter()
    loaded = onnx.load(str(model), load_external_data=False)
    load_s = time.perf_counter() - started
    del loaded
    started = time.perf_counter()
    digest = hashlib.sha256()
    with model.open("rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return {"raw_onnx_load_s": round(load_s, 2), "raw_sha256_s": round(time.perf_counter() - started, 2)}


def validator_speed(work: Path, gib: float, log: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """``shim validate`` of the generated model, cold (the first run of fresh processes after the
    kernel was written) and again, printed next to the raw cost of reading the file once."""
    result: dict[str, Any] = {}
    started = time.perf_counter()
    big = big_kernel(work, gib)
    size = (big / "model.onnx").stat().st_size
    result["big_model_bytes"] = size
    result["big_model_generate_s"] = round(time.perf_counter() - started, 2)
    for label in ("validate_big_cold_s", "validate_big_again_s"):
        seconds, code, tail = _timed([SHIM, "validate", str(big)])
        result[label] = round(seconds, 2)
        if code != 0:
            result["validate_error"] = tail
    result.update(raw_costs(big / "model.onnx"))
    raw = result["raw_onnx_load_s"] + result["raw_sha256_s"]
    result["validate_vs_raw_ratio"] = round(result["validate_big_cold_s"] / raw, 2) if raw else None
    log(f"validator: {size / 2**30:.2f} GiB ONNX kernel: shim validate "
        f"{result['validate_big_cold_s']} s cold, "
        f"{result['validate_big_again_s']} s again; raw: one onnx.load {result['raw_onnx_load_s']} s + one "
        f"SHA-256 pass {result['raw_sha256_s']} s = {raw:.2f} s (target: validate < 10 s cold)")
    return big, result


def run_all(work: Path, kernels: dict[str, Path], gib: float, log: Callable[[str], None]) -> dict[str, Any]:
    big, result = validator_speed(work, gib, log)
    hook = hook_cache_command(big)
    _timed(hook)  # fills the cache
    seconds, code, tail = _timed(hook)
    result["hook_cache_unchanged_s"] = round(seconds, 3)
    result["hook_cache_command"] = " ".join(hook[1:])
    if code != 0:
        result["hook_cache_error"] = tail
    try:
        times = [serve_to_ready(kernels["mlp"], 18090, work) for _ in range(3)]
        result["serve_to_ready_mlp_s"] = round(statistics.median(times), 3)
        result["serve_to_ready_big_s"] = round(serve_to_ready(big, 18090, work), 3)
    except ServerFailed as exc:
        result["serve_error"] = str(exc)[:500]
    log("startup: " + ", ".join(f"{k}={v}" for k, v in result.items()))
    return result


if __name__ == "__main__":  # the validator timing alone: python -m benchmarks.startup [--gib 1]
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=validator_speed.__doc__)
    parser.add_argument("--gib", type=float, default=1.0, help="size of the generated ONNX model")
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "results" / "work")
    arguments = parser.parse_args()
    print(json.dumps(validator_speed(arguments.work, arguments.gib, print)[1], indent=2))
