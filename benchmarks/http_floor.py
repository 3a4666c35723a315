"""Where kernelshim's round trip at concurrency 1 goes: ``python -m benchmarks.http_floor``.

The issue's p50-overhead target is measured against the in-process model call. This splits the
round trip into layers, each measured with the same wrk load (concurrency 1, same v2 JSON body
for the MLP, several alternating rounds, the median p50 reported):

- ``httptools, no ASGI``: a bare asyncio protocol answering a constant (parser + loopback + wrk);
- ``uvicorn, constant ASGI app``: uvicorn with ``shim serve``'s options answering a constant;
- ``kernelshim``: ``shim serve`` on the MLP kernel (decode, model, encode, metrics).

The differences are the cost of uvicorn's ASGI layer and of kernelshim's own request path.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from benchmarks.loadgen import Payload, run_load
from benchmarks.models import MODELS, prepare
from benchmarks.systems import HOST, PEERS, Launch, RunningServer, v2_json

RESULTS = Path(__file__).resolve().parent / "results"
UVICORN_OPTIONS = ["--http", "httptools", "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
                   "--no-server-header"]


def _launches(mlp_kernel: Path, port: int) -> dict[str, Launch]:
    python = sys.executable
    shim = str(Path(python).parent / "shim")
    env = dict(os.environ)
    return {
        "httptools, no ASGI": Launch([python, str(PEERS / "floor_app.py"), str(port)], env, "/", PEERS),
        "uvicorn, constant ASGI app": Launch(
            [python, "-m", "uvicorn", "floor_app:app", "--host", HOST, "--port", str(port), *UVICORN_OPTIONS],
            env, "/", PEERS),
        "kernelshim": Launch(
            [shim, "serve", str(mlp_kernel), "--host", HOST, "--port", str(port), "--grpc-port", "0",
             "--threads", "1",
             "--log-level", "warning"], env, "/v2/health/ready"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=18190)
    args = parser.parse_args(argv)

    model = MODELS["mlp"]
    kernel = prepare(RESULTS / "work")["mlp"]
    payload = v2_json(model, model.sample())
    p50s: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, launch in _launches(kernel, args.port).items():
            server = RunningServer(launch, args.port, RESULTS / "logs" / "http-floor.log")
            try:
                server.wait_ready(60)
                sent = payload if name == "kernelshim" else Payload("/", payload.body)
                run_load(server.base, sent, 1, 1000)  # warm-up
                result = run_load(server.base, sent, 1, args.requests)
                p50s.setdefault(name, []).append(result.p50_ms * 1000)
            finally:
                server.stop()
    print(f"concurrency 1, {args.requests} requests x {args.rounds} rounds, median p50 (all rounds):\n")
    print("| layer | p50 us | added by this layer us | rounds |")
    print("|---|---:|---:|---|")
    previous = 0.0
    for name, values in p50s.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {median:.0f} | {median - previous:.0f} | {rounds} |")
        previous = median
    return 0


if __name__ == "__main__":
    sys.exit(main())
