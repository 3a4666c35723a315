"""What drift monitoring costs the request path: the MLP served with monitoring on and off.

``python -m benchmarks.monitoring`` (or part of ``python -m benchmarks.run``). The same MLP kernel
is served twice: as is, and with a ``monitoring`` block and a profile of 2,000 reference rows (16
features and the probability output tested per 1,000-row window, every request observed). Each is
driven by wrk at concurrency 32 (throughput) and 1 (p50 latency), alternating off/on/off/on so
machine noise hits both alike; the figures are the ratio on/off of the medians of the c=32
throughput and the c=1 p50 difference, from this one run, plus the request path's own added cost
measured in-process (a request id and one deque append). Targets (issue 12): throughput on >=
0.95 x off; p50 at most 10 us more.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.loadgen import Payload, run_load
from benchmarks.models import MODELS, prepare
from benchmarks.systems import RunningServer, kernelshim_launch


def _free_port_pair() -> int:
    """A port whose successor is free too (the launch puts gRPC on port + 1)."""
    import socket

    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free pair of loopback ports")


def monitored_copy(kernel: Path, work: Path) -> Path:
    """The kernel with a monitoring block and its profile (shim profile's library function)."""
    from shim.contract.profiling import build_profile

    target = work / "mlp-monitored"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(kernel, target)
    path = target / "model_metadata.json"
    metadata = json.loads(path.read_text())
    metadata["monitoring"] = {"profile": "profile.json", "window": {"rows": 1000}, "windows_in_a_row": 3}
    path.write_text(json.dumps(metadata, indent=2))
    data = work / "mlp-reference" / "x.npy"
    data.parent.mkdir(parents=True, exist_ok=True)
    np.save(data, MODELS["mlp"].sample(2000, seed=1))
    build_profile(target, [data])
    return target


def hot_path_ns(kernel: Path, calls: int = 200_000) -> dict[str, float]:
    """In-process cost of what a monitored request adds: a request id and ``observe`` (a deque append).

    The monitor thread is not started, so this is the request path alone, free of machine noise.
    """
    import timeit

    from prometheus_client import CollectorRegistry

    from shim.contract.kernel import read_kernel
    from shim.contract.profile_check import load_profile
    from shim.server.monitoring.monitor import Monitor

    loaded = read_kernel(kernel)
    profile, spec = load_profile(loaded)
    monitor = Monitor(loaded, profile, spec, CollectorRegistry())
    inputs = {"x": MODELS["mlp"].sample(1)}
    outputs = {"probabilities": np.full((1, 4), 0.25, dtype=np.float32)}

    def one() -> None:
        monitor.observe(monitor.new_id(), inputs, outputs)

    best = min(timeit.repeat(one, number=calls, repeat=5)) / calls
    return {"request_id_and_observe_ns": round(best * 1e9, 1)}


def _measure(kernel: Path, port: int, requests_c32: int, requests_c1: int, work: Path) -> dict[str, Any]:
    model = MODELS["mlp"]
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": model.input_name,
                    "datatype": "FP32",
                    "shape": [1, 16],
                    "data": model.sample(1).ravel().tolist(),
                }
            ]
        }
    ).encode()
    payload = Payload(f"/v2/models/{model.name}/infer", body)
    server = RunningServer(
        kernelshim_launch(model, kernel, port, 1, work), port, work / f"monitoring-{port}.log"
    )
    try:
        server.wait_ready(120)
        run_load(server.base, payload, 32, max(200, requests_c32 // 5))  # warm-up
        c32 = run_load(server.base, payload, 32, requests_c32)
        run_load(server.base, payload, 1, max(100, requests_c1 // 5))
        c1 = run_load(server.base, payload, 1, requests_c1)
        windows = 0
        text = server.get("/metrics").decode()
        for line in text.splitlines():
            if line.startswith("shim_drift_windows_total{"):
                windows = int(float(line.rsplit(" ", 1)[1]))
        return {
            "throughput_c32": c32.throughput,
            "p50_c1_ms": c1.p50_ms,
            "errors": c32.errors + c1.errors,
            "windows_evaluated": windows,
        }
    finally:
        server.stop()


def run_all(
    work: Path,
    log: Callable[[str], None],
    requests_c32: int = 20000,
    requests_c1: int = 5000,
    rounds: int = 2,
) -> dict[str, Any]:
    work = Path(work)
    kernels = prepare(work)
    plain = kernels["mlp"]
    monitored = monitored_copy(plain, work)
    hot = hot_path_ns(monitored)
    log(f"monitoring: request path adds {hot['request_id_and_observe_ns']} ns (request id + observe)")
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for _round in range(rounds):
        for mode, kernel in (("off", plain), ("on", monitored)):
            result = _measure(kernel, _free_port_pair(), requests_c32, requests_c1, work)
            runs[mode].append(result)
            log(
                f"monitoring {mode}: {result['throughput_c32']:.0f} req/s at c=32, "
                f"p50 {result['p50_c1_ms'] * 1000:.0f} us at c=1, {result['windows_evaluated']} windows"
            )
    off_tp = statistics.median(r["throughput_c32"] for r in runs["off"])
    on_tp = statistics.median(r["throughput_c32"] for r in runs["on"])
    off_p50 = statistics.median(r["p50_c1_ms"] for r in runs["off"])
    on_p50 = statistics.median(r["p50_c1_ms"] for r in runs["on"])
    summary = {
        "throughput_c32_off": round(off_tp, 1),
        "throughput_c32_on": round(on_tp, 1),
        "throughput_ratio": round(on_tp / off_tp, 3),
        "p50_c1_us_off": round(off_p50 * 1000, 1),
        "p50_c1_us_on": round(on_p50 * 1000, 1),
        "p50_delta_us": round((on_p50 - off_p50) * 1000, 1),
        **hot,
        "requests_c32": requests_c32,
        "requests_c1": requests_c1,
        "rounds": rounds,
        "targets": {"throughput_ratio": ">= 0.95", "p50_delta_us": "<= 10"},
        "runs": runs,
    }
    log(
        f"monitoring: throughput on/off {summary['throughput_ratio']}, p50 delta {summary['p50_delta_us']} us"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests-c32", type=int, default=20000)
    parser.add_argument("--requests-c1", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "results" / "work")
    args = parser.parse_args()
    result = run_all(args.work, print, args.requests_c32, args.requests_c1, args.rounds)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
