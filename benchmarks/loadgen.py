"""The one load generator every system is driven with: ``wrk`` (C, epoll) plus wrk_post.lua.

On a 2-core machine the client competes with the server for CPU, so it has to be cheap: wrk with
one thread costs a fraction of what a Python client would, and it costs the same for every
system. Each measurement is a fixed number of requests on N keep-alive connections after a
warm-up run with the same body and concurrency.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "wrk_post.lua"


class LoadGenError(RuntimeError):
    pass


@dataclass(frozen=True)
class Payload:
    """One request body as a system's API wants it (same tensor content for every system)."""

    path: str  # URL path
    body: bytes
    content_type: str = "application/json"
    header_length: int | None = None  # Inference-Header-Content-Length for binary tensors


@dataclass
class LoadResult:
    requests: int
    seconds: float
    throughput: float  # successful requests per second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int  # non-200 answers + socket errors + timeouts

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise LoadGenError("wrk is not installed: apt-get install -y wrk (Debian package 'wrk')")
    return found


def run_load(
    url_base: str, payload: Payload, concurrency: int, requests: int, timeout_s: float = 120.0
) -> LoadResult:
    """Send ``requests`` requests on ``concurrency`` connections; wrk stops once that many answered."""
    with tempfile.NamedTemporaryFile(prefix="bench-body-", delete=False) as handle:
        handle.write(payload.body)
        body_file = handle.name
    env = {
        **os.environ,
        "BENCH_BODY_FILE": body_file,
        "BENCH_CONTENT_TYPE": payload.content_type,
        "BENCH_HEADER_LENGTH": "" if payload.header_length is None else str(payload.header_length),
        "BENCH_REQUESTS": str(requests),
    }
    command = [
        wrk_binary(),
        "-t1",
        f"-c{concurrency}",
        f"-d{int(timeout_s)}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url_base + payload.path,
    ]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s + 30)
    finally:
        os.unlink(body_file)
    raw: dict[str, float] = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            raw.update(json.loads(line))
    if done.returncode != 0 or "p50_us" not in raw:
        raise LoadGenError(f"wrk failed (exit {done.returncode}): {(done.stderr or done.stdout)[-500:]}")
    # the script's own clock (start to the requests-th answer); wrk's covers the whole -d window
    # when the run did not reach the request count
    seconds = raw.get("elapsed_us", raw["duration_us"]) / 1e6
    errors = (
        raw["connect_errors"]
        + raw["read_errors"]
        + raw["write_errors"]
        + raw["status_errors"]
        + raw["timeouts"]
    )
    ok = max(0, raw["requests"] - raw["status_errors"])
    if "answered" in raw:
        ok = max(0, int(raw["answered"]) - int(raw["status_errors"]))
    throughput = round(ok / seconds, 1) if seconds else 0.0
    return LoadResult(
        requests=int(raw["requests"]),
        seconds=round(seconds, 4),
        throughput=throughput,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=round(raw["mean_us"] / 1000, 4),
        max_ms=raw["max_us"] / 1000,
        errors=int(errors),
    )
