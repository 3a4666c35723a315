"""One command for the whole comparison: ``python -m benchmarks.run`` (``--smoke`` for CI).

Installs the peers' venvs (idempotent), exports the models, measures the in-process limit, then
serves each model with every system in turn and drives it with the same wrk load: same payload
tensor, concurrency 1/8/32, warm-up, fixed request count. Prints one markdown table and writes
absolute figures, ratios against kernelshim and the machine description, all from this run, to
benchmarks/results/ (and docs/benchmarks.md with ``--write-docs``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import gate, grpc_load, inprocess, monitoring, peer_envs, startup
from benchmarks.loadgen import LoadGenError, run_load, wrk_binary
from benchmarks.models import MODELS, prepare
from benchmarks.report import render_markdown, summarize, write_docs
from benchmarks.systems import HOST, SYSTEMS, RunningServer, ServerFailed

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PORT_BASE = 18100


def ensure_wrk() -> None:
    """wrk comes from Debian; install it when missing and we may (root with apt-get)."""
    if (shutil.which("wrk") and shutil.which("h2load")) or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    subprocess.run("apt-get update -qq && apt-get install -y -qq wrk nghttp2-client", shell=True, check=False,
                   stdout=subprocess.DEVNULL)


def machine_description() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    memory = ""
    with contextlib.suppress(OSError):
        memory = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    import onnxruntime

    wrk_version = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory": memory,
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "load_generator": wrk_version.strip() or "wrk",
    }


def _batch_stats(server: RunningServer, model: str) -> tuple[float, float]:
    """(sum, count) of kernelshim's shim_batch_size histogram."""
    text = server.get("/metrics").decode()
    label = f'model="{re.escape(model)}"'
    total = re.search(r"^shim_batch_size_sum\{[^}]*" + label + r"[^}]*\} (\S+)", text, re.M)
    count = re.search(r"^shim_batch_size_count\{[^}]*" + label + r"[^}]*\} (\S+)", text, re.M)
    return (float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0)


def _bench_grpc(system: Any, model: Any, server: RunningServer, port: int, args: argparse.Namespace,
                expected: np.ndarray, x: np.ndarray, entry: dict[str, Any], log: Any) -> None:
    """The same tensor over gRPC (h2load), after checking the answer with a real gRPC client."""
    import grpc

    address = f"{HOST}:{port + 1}"
    request = grpc_load.infer_request(model.name, model.input_name, x)
    try:
        got = grpc_load.check_answer(address, request, model.output_name)
    except grpc.RpcError as exc:
        raise ServerFailed(f"gRPC answer failed: {exc.code()} {exc.details()}") from None
    if not np.allclose(got.reshape(expected.shape), expected, atol=1e-4, rtol=1e-3):
        raise ServerFailed(f"grpc answer differs from in-process onnxruntime: {got} vs {expected}")
    for concurrency in args.concurrency:
        grpc_load.run_grpc_load(address, request, concurrency, max(args.warmup, concurrency * 4))
        result = grpc_load.run_grpc_load(address, request, concurrency, args.requests[model.name]).as_dict()
        result.update({"payload": "grpc", "concurrency": concurrency})
        entry["runs"].append(result)
        log(f"  {system.name:<18} {model.name} grpc   c={concurrency:<3} {result['throughput']:>9.1f} req/s  "
            f"p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms  errors {result['errors']}")


def bench_system(
    system: Any,
    model: Any,
    kernel: Path,
    port: int,
    args: argparse.Namespace,
    work: Path,
    expected: np.ndarray,
    log: Any,
) -> dict[str, Any]:
    """Start one system with one model, check its answer, run every payload x concurrency."""
    entry: dict[str, Any] = {"system": system.name, "model": model.name, "notes": system.notes, "runs": []}
    server = None
    try:
        launch = system.launcher(model, kernel, port, args.threads, work)
        server = RunningServer(launch, port, work / "logs" / f"{system.name.split()[0]}-{model.name}.log")
        entry["ready_s"] = round(server.wait_ready(args.ready_timeout), 2)
        x = model.sample(1)
        for payload_name, build in system.payloads.items():
            payload = build(model, x)
            body, headers = server.post(payload)
            got = system.parse(body, headers)
            if not np.allclose(got.reshape(expected.shape), expected, atol=1e-4, rtol=1e-3):
                raise ServerFailed(
                    f"{payload_name} answer differs from in-process onnxruntime: {got} vs {expected}"
                )
            for concurrency in args.concurrency:
                requests = args.requests[model.name]
                run_load(server.base, payload, concurrency, max(args.warmup, concurrency * 4))
                before = _batch_stats(server, model.name) if system.venv is None else None
                result = run_load(server.base, payload, concurrency, requests).as_dict()
                if before is not None:
                    after = _batch_stats(server, model.name)
                    executions = after[1] - before[1]
                    result["mean_batch"] = (
                        round((after[0] - before[0]) / executions, 2) if executions else None
                    )
                result.update({"payload": payload_name, "concurrency": concurrency})
                entry["runs"].append(result)
                log(
                    f"  {system.name:<18} {model.name} {payload_name:<6} c={concurrency:<3} "
                    f"{result['throughput']:>9.1f} req/s  p50 {result['p50_ms']:.3f} ms  "
                    f"p99 {result['p99_ms']:.3f} ms  errors {result['errors']}"
                    + (f"  mean batch {result.get('mean_batch')}" if "mean_batch" in result else "")
                )
        if system.grpc:
            _bench_grpc(system, model, server, port, args, expected, x, entry, log)
    except (ServerFailed, LoadGenError, OSError, ValueError, KeyError) as exc:
        entry["error"] = f"{type(exc).__name__}: {exc}"[:1500]
        log(f"  {system.name} {model.name}: FAILED {entry['error'][:400]}")
    finally:
        if server is not None:
            server.stop()
    return entry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="a few requests per system (CI): checks it all runs"
    )
    parser.add_argument(
        "--systems",
        default="",
        help="comma-separated subset of: " + ", ".join(s.name.split()[0] for s in SYSTEMS),
    )
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads, every system")
    parser.add_argument("--requests-mlp", type=int, default=5000)
    parser.add_argument("--requests-cnn", type=int, default=1200)
    parser.add_argument("--no-install", action="store_true", help="skip peers whose venv is not installed")
    parser.add_argument("--skip-startup", action="store_true", help="skip the validator/start-up benchmarks")
    parser.add_argument("--big-model-gib", type=float, default=1.0, help="size of the generated ONNX model")
    parser.add_argument("--write-docs", action="store_true", help="rewrite docs/benchmarks.md from this run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.requests = {"mlp": args.requests_mlp, "cnn": args.requests_cnn}
    args.warmup = 300
    args.ready_timeout = 180.0
    if args.smoke:
        args.requests = {"mlp": 40, "cnn": 20}
        args.warmup = 10
        args.concurrency = [1, 8]
        args.big_model_gib = min(args.big_model_gib, 0.01)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    # a SIGTERM (CI timeout) unwinds like Ctrl-C, so the running server is stopped, not orphaned
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    ensure_wrk()
    wanted = {s for s in args.systems.split(",") if s}
    systems = [s for s in SYSTEMS if not wanted or s.name.split()[0] in wanted]
    models = [MODELS[m] for m in args.models.split(",") if m]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = args.out / "work"
    results: dict[str, Any] = {
        "started": stamp,
        "mode": "smoke" if args.smoke else "full",
        "command": "python -m benchmarks.run " + " ".join(argv or sys.argv[1:]),
        "machine": machine_description(),
        "load_before": os.getloadavg(),
        "settings": {
            "threads": args.threads,
            "concurrency": args.concurrency,
            "requests": args.requests,
            "warmup_requests": args.warmup,
            "load_generator": "wrk -t1 (one client thread, keep-alive)",
        },
        "peer_install": {},
        "unavailable": {},
        "inprocess": {},
        "servers": [],
    }
    log(
        f"machine: {results['machine']['cpu']}, {results['machine']['usable_cpus']} CPUs, "
        f"load {results['load_before'][0]:.2f}"
    )

    wanted_venvs = [
        s.venv for s in systems
        if s.venv is not None and not (args.no_install and not peer_envs.is_installed(s.venv))
    ]
    installs = peer_envs.install_all(wanted_venvs)
    for venv, (ok, seconds, reason) in installs.items():
        results["peer_install"][venv] = {"ok": ok, "seconds": round(seconds, 1)}
        log(f"peer venv {venv}: {'ok' if ok else 'FAILED'} ({seconds:.1f}s) {reason}")
    available = []
    for system in systems:
        if system.venv is None:
            available.append(system)
        elif system.venv not in installs:
            results["unavailable"][system.name] = "peer venv not installed (--no-install)"
        elif installs[system.venv][0]:
            available.append(system)
        else:
            results["unavailable"][system.name] = installs[system.venv][2]

    kernels = prepare(work)
    log("models exported: " + ", ".join(kernels))
    for model in models:
        path = kernels[model.name] / "model.onnx"
        batches = sorted({1, *(c for c in args.concurrency if c <= model.max_batch_size)})
        seconds = 0.2 if args.smoke else 1.5
        results["inprocess"][model.name] = [
            inprocess.measure(model, path, args.threads, b, seconds) for b in batches
        ]
        log(
            f"in-process {model.name}: "
            + ", ".join(
                f"b={r['batch']} p50 {r['p50_us']}us {r['rows_per_s']} rows/s"
                for r in results["inprocess"][model.name]
            )
        )

    for model in models:
        kernel = kernels[model.name]
        expected = inprocess.session(kernel / "model.onnx", 1).run(None, {model.input_name: model.sample(1)})[
            0
        ]
        for index, system in enumerate(available):
            entry = bench_system(system, model, kernel, PORT_BASE + 10 * index, args, work, expected, log)
            results["servers"].append(entry)
            if entry.get("error") and system.name not in results["unavailable"]:
                results["unavailable"][f"{system.name} ({model.name})"] = entry["error"]

    # in-process throughput at the batch size kernelshim's dynamic batcher actually formed
    for entry in results["servers"]:
        if entry["system"] != "kernelshim":
            continue
        model = MODELS[entry["model"]]
        for run in entry["runs"]:
            mean = run.get("mean_batch")
            if mean and run["concurrency"] == max(args.concurrency):
                batch = max(1, round(mean))
                measured = {r["batch"] for r in results["inprocess"][model.name]}
                if batch not in measured:
                    results["inprocess"][model.name].append(
                        inprocess.measure(
                            model,
                            kernels[model.name] / "model.onnx",
                            args.threads,
                            batch,
                            0.2 if args.smoke else 1.5,
                        )
                    )

    if not args.skip_startup:
        results["startup"] = startup.run_all(work, kernels, args.big_model_gib, log)
        results["gate"] = gate.run_all(work, args.big_model_gib, log, repeat=1 if args.smoke else 3)
        results["monitoring"] = monitoring.run_all(work, log, *((1000, 300, 2) if args.smoke else ()))

    results["load_after"] = os.getloadavg()
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["summary"] = summarize(results)
    table = render_markdown(results)
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"results-{results['mode']}-{stamp}.json"
    text = json.dumps(results, indent=2, default=float)
    path.write_text(text)
    (args.out / f"latest-{results['mode']}.json").write_text(text)
    log(f"wrote {path}")
    if args.write_docs:
        write_docs(results, table)
        log("updated docs/benchmarks.md")
    return 0 if not results["unavailable"] or not args.smoke else _smoke_status(results)


def _smoke_status(results: dict[str, Any]) -> int:
    """In smoke mode a system that cannot run fails CI, except Triton (documented as optional)."""
    failing = [name for name in results["unavailable"] if not name.startswith("triton")]
    for name in failing:
        print(f"smoke: {name} did not run: {results['unavailable'][name]}", file=sys.stderr)
    return 1 if failing else 0


if __name__ == "__main__":
    raise SystemExit(main())
