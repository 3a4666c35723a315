"""gRPC load for every system that speaks the Open Inference Protocol over gRPC, with one generator.

``h2load`` (Debian's nghttp2-client, C) posts one prepared, length-prefixed ``ModelInferRequest``
to ``/inference.GRPCInferenceService/ModelInfer`` on ``concurrency`` HTTP/2 connections, one
stream each, and logs every response's latency (``--log-file``), from which the percentiles are
computed exactly as for wrk. h2load sees HTTP/2 statuses only, not gRPC's trailers, so every
system's answer is first checked with a real gRPC client (grpcio and the vendored stubs): a
system that answers the prepared request wrongly is not measured.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.loadgen import LoadGenError, LoadResult

METHOD = "/inference.GRPCInferenceService/ModelInfer"


def h2load_binary() -> str:
    found = shutil.which("h2load")
    if not found:
        raise LoadGenError("h2load is not installed: apt-get install -y nghttp2-client")
    return found


def infer_request(model_name: str, input_name: str, x: np.ndarray) -> bytes:
    """The serialized ``ModelInferRequest`` (raw FP32 contents, as tritonclient sends them)."""
    from shim.protocol import grpc as oip

    request = oip.ModelInferRequest(model_name=model_name)
    request.inputs.add(name=input_name, datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(np.ascontiguousarray(x, dtype="<f4").tobytes())
    return request.SerializeToString()


def check_answer(address: str, request: bytes, output_name: str) -> np.ndarray:
    """Send the prepared request once with grpcio; the named output as an array."""
    import grpc

    from shim.protocol import grpc as oip

    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD, request_serializer=lambda b: b,
                                   response_deserializer=oip.ModelInferResponse.FromString)
        response = call(request, timeout=30)
    for index, tensor in enumerate(response.outputs):
        if tensor.name != output_name:
            continue
        if len(response.raw_output_contents) > index:
            return np.frombuffer(response.raw_output_contents[index], dtype="<f4").reshape(list(tensor.shape))
        return np.array(tensor.contents.fp32_contents, dtype=np.float32).reshape(list(tensor.shape))
    raise LoadGenError(f"no output {output_name!r} in the gRPC answer")


def run_grpc_load(address: str, request: bytes, concurrency: int, requests: int,
                  timeout_s: float = 120.0) -> LoadResult:
    framed = b"\x00" + len(request).to_bytes(4, "big") + request
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as scratch:
        body, log_file = Path(scratch, "body"), Path(scratch, "log")
        body.write_bytes(framed)
        command = [
            h2load_binary(), "-n", str(requests), "-c", str(concurrency), "-m", "1", "-t", "1",
            "-H", "content-type: application/grpc", "-H", "te: trailers",
            "-d", str(body), "--log-file", str(log_file), f"http://{address}{METHOD}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, "LC_ALL": "C"})
        if done.returncode != 0 or not log_file.exists():
            output = (done.stderr or done.stdout)[-500:]
            raise LoadGenError(f"h2load failed (exit {done.returncode}): {output}")
        rows = [line.split("\t") for line in log_file.read_text().splitlines() if line.strip()]
    finished = re.search(r"finished in ([\d.]+)(m?s)", done.stdout)
    if not finished or not rows:
        raise LoadGenError(f"h2load printed no result: {done.stdout[-500:]}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    latencies = np.array([int(r[2]) for r in rows if r[1] == "200"], dtype=np.float64) / 1000.0
    errors = sum(1 for r in rows if r[1] != "200") + max(0, requests - len(rows))
    if not latencies.size:
        raise LoadGenError("no request succeeded")
    return LoadResult(
        requests=len(rows), seconds=round(seconds, 4), throughput=round(latencies.size / seconds, 1),
        p50_ms=float(np.percentile(latencies, 50)), p90_ms=float(np.percentile(latencies, 90)),
        p99_ms=float(np.percentile(latencies, 99)), mean_ms=round(float(latencies.mean()), 4),
        max_ms=float(latencies.max()), errors=int(errors),
    )
