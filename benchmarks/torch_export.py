"""Does compiling a torch.export program pay off on CPU? (docs/benchmarks.md, "torch.export (issue 13)")

Run: python -m benchmarks.torch_export [--iterations 300] [--threads 2]

For the two benchmark models (``mlp``: latency-bound, ``cnn``: compute-bound; benchmarks/models.py)
exported with ``torch.export`` and a dynamic batch (1-64), this times one call at batch 1 and 16:

* ``eager``: ``ExportedProgram.module()`` under ``torch.inference_mode`` (what kernelshim serves
  by default, through ``TorchExportRuntime``);
* ``compile``: the same module through ``torch.compile(dynamic=True)`` (``KERNELSHIM_TORCH_COMPILE
  =default``), warmed up first;
* ``aoti``: an AOTInductor package (``torch._inductor.aoti_compile_and_package``) loaded with
  ``aoti_load_package``;
* ``onnxruntime``: the same model exported to ONNX, as a reference.

The variants are timed in interleaved rounds (the machine is shared: a slow moment hits all of
them alike) and the table reports medians, plus the one-off cost to get each ready. Outputs are
checked against eager before timing. No GPU is used (none is lent to this project's machines).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.models import MODELS, _torch_module, export_onnx

BATCHES = (1, 16)


def _timed(make: Callable[[], Callable]) -> tuple[Callable, float]:
    start = time.perf_counter()
    call = make()
    return call, time.perf_counter() - start


def prepare(name: str, work: Path, threads: int) -> dict[str, tuple[Callable, float]]:
    """Each variant as ``call(numpy batch) -> numpy output``, with its set-up seconds."""
    import onnxruntime as ort
    import torch

    torch.set_num_threads(threads)
    model = MODELS[name]
    module = _torch_module(name)
    example = torch.from_numpy(model.sample(2))
    batch = torch.export.Dim("batch", min=1, max=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    path = work / f"{name}.pt2"
    torch.export.save(program, str(path))
    variants: dict[str, tuple[Callable, float]] = {}

    def eager() -> Callable:
        loaded = torch.export.load(str(path)).module()

        def call(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return loaded(torch.from_numpy(x)).numpy()

        return call

    def compiled() -> Callable:
        loaded = torch.compile(torch.export.load(str(path)).module(), dynamic=True)

        def call(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return loaded(torch.from_numpy(x)).numpy()

        for rows in BATCHES:  # compile happens on first calls; count it as set-up
            call(model.sample(rows))
        return call

    def aoti() -> Callable:
        package = torch._inductor.aoti_compile_and_package(
            torch.export.load(str(path)), package_path=str(work / f"{name}-aoti.pt2")
        )
        runner = torch._inductor.aoti_load_package(package)

        def call(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return runner(torch.from_numpy(x)).numpy()

        return call

    def onnx() -> Callable:
        onnx_path = work / f"{name}.onnx"
        export_onnx(model, onnx_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {model.input_name: x})[0]

    for label, make in (("eager", eager), ("compile", compiled), ("aoti", aoti), ("onnxruntime", onnx)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                variants[label] = _timed(make)
            except Exception as exc:  # a variant that cannot build here is reported, not fatal
                print(f"{name}: {label} unavailable: {type(exc).__name__}: {str(exc)[:200]}")
    return variants


def measure(name: str, variants: dict[str, tuple[Callable, float]], iterations: int) -> list[dict]:
    model = MODELS[name]
    rows = []
    for size in BATCHES:
        x = model.sample(size, seed=size)
        reference = variants["eager"][0](x)
        for label, (call, _setup) in variants.items():
            np.testing.assert_allclose(call(x), reference, rtol=1e-3, atol=1e-5, err_msg=f"{name} {label}")
        times: dict[str, list[float]] = {label: [] for label in variants}
        rounds = 10
        per_round = max(iterations // rounds, 1)
        for _ in range(rounds):
            for label, (call, _setup) in variants.items():
                start = time.perf_counter()
                for _ in range(per_round):
                    call(x)
                times[label].append((time.perf_counter() - start) / per_round)
        eager = statistics.median(times["eager"])
        for label in variants:
            median = statistics.median(times[label])
            rows.append({
                "model": name, "batch": size, "variant": label, "us_per_call": median * 1e6,
                "vs_eager": eager / median, "setup_s": variants[label][1],
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("mlp", "cnn"):
            rows += measure(name, prepare(name, Path(tmp), args.threads), args.iterations)
    print("| model | batch | variant | us per call (median) | speed-up vs eager | set-up s |")
    print("|---|---:|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']} | {row['batch']} | {row['variant']} | {row['us_per_call']:,.1f} | "
              f"{row['vs_eager']:.2f}x | {row['setup_s']:.1f} |")


if __name__ == "__main__":
    main()
