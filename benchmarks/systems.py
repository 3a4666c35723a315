"""The serving systems under test: how to start each one, when it is ready, what it is sent.

Every server runs as a subprocess bound to 127.0.0.1 on its own port, one at a time, with the
same onnxruntime thread settings (``BENCH_THREADS`` / ``--threads``). Request bodies carry the same
tensor in each system's own API: the KServe v2 JSON document for kernelshim, MLServer and
Triton; Triton's binary tensor extension for kernelshim's binary variant; ``{"inputs": [[...]]}``
for the FastAPI and BentoML services.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks import peer_envs
from benchmarks.loadgen import Payload
from benchmarks.models import BenchModel

REPO = Path(__file__).resolve().parent.parent
PEERS = Path(__file__).resolve().parent / "peers"
HOST = "127.0.0.1"


class ServerFailed(RuntimeError):
    pass


# -- payloads -----------------------------------------------------------------------------------


def v2_json(model: BenchModel, x: np.ndarray) -> Payload:
    body = {
        "inputs": [
            {"name": model.input_name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        ]
    }
    return Payload(f"/v2/models/{model.name}/infer", json.dumps(body).encode())


def v2_binary(model: BenchModel, x: np.ndarray) -> Payload:
    raw = np.ascontiguousarray(x, dtype="<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": model.input_name,
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return Payload(f"/v2/models/{model.name}/infer", header + raw, "application/octet-stream", len(header))


def plain_json(model: BenchModel, x: np.ndarray) -> Payload:
    return Payload("/predict", json.dumps({"inputs": x.tolist()}).encode())


def parse_v2(body: bytes, headers: dict[str, str]) -> np.ndarray:
    length = headers.get("inference-header-content-length")
    if length is None:
        output = json.loads(body)["outputs"][0]
        return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
    header = json.loads(body[: int(length)])
    output = header["outputs"][0]
    return np.frombuffer(body[int(length) :], dtype="<f4").reshape(output["shape"])


def parse_plain(body: bytes, headers: dict[str, str]) -> np.ndarray:
    document = json.loads(body)
    return np.asarray(document["outputs"] if isinstance(document, dict) else document, dtype=np.float32)


# -- systems ------------------------------------------------------------------------------------


@dataclass
class Launch:
    command: list[str]
    env: dict[str, str]
    ready_path: str
    cwd: Path = REPO


@dataclass
class System:
    name: str  # as printed in the table
    venv: str | None  # peer venv section, None = the product's venv
    launcher: Callable[[BenchModel, Path, int, int, Path], Launch]
    payloads: dict[str, Callable[[BenchModel, np.ndarray], Payload]]
    parse: Callable[[bytes, dict[str, str]], np.ndarray]
    notes: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    #: serves the Open Inference Protocol over gRPC on the HTTP port + 1 (measured with h2load)
    grpc: bool = False


def _base_env(model: BenchModel, kernel: Path, port: int, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update(
        {
            "BENCH_MODEL_PATH": str(kernel / "model.onnx"),
            "BENCH_THREADS": str(threads),
            "BENCH_PORT": str(port),
            "BENCH_MODEL_NAME": model.name,
            "BENCH_MAX_BATCH": str(model.max_batch_size),
            "BENCH_DELAY_US": str(model.max_queue_delay_us),
            "OMP_NUM_THREADS": str(threads),
            "PYTHONPATH": str(REPO),
        }
    )
    return env


def kernelshim_launch(model: BenchModel, kernel: Path, port: int, threads: int, work: Path) -> Launch:
    shim = Path(sys.executable).parent / "shim"
    command = [
        str(shim),
        "serve",
        str(kernel),
        "--host",
        HOST,
        "--port",
        str(port),
        "--grpc-port",
        str(port + 1),  # as MLServer's and Triton's gRPC ports here
        "--threads",
        str(threads),
        "--log-level",
        "warning",
        "--log-format",
        "text",
    ]
    return Launch(command, _base_env(model, kernel, port, threads), "/v2/health/ready")


def _fastapi(model: BenchModel, kernel: Path, port: int, threads: int, work: Path) -> Launch:
    python = str(peer_envs.venv_python("fastapi"))
    command = [
        python,
        "-m",
        "uvicorn",
        "benchmarks.peers.fastapi_app:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return Launch(command, _base_env(model, kernel, port, threads), "/health")


def _mlserver(model: BenchModel, kernel: Path, port: int, threads: int, work: Path) -> Launch:
    root = work / "mlserver" / model.name
    model_dir = root / model.name
    shutil.rmtree(root, ignore_errors=True)
    model_dir.mkdir(parents=True)
    shutil.copy(PEERS / "mlserver_runtime.py", model_dir / "mlserver_runtime.py")
    (root / "settings.json").write_text(
        json.dumps(
            {
                "host": HOST,
                "http_port": port,
                "grpc_port": port + 1,
                "metrics_port": port + 2,
                "debug": False,
            }
        )
    )
    settings: dict[str, object] = {"name": model.name, "implementation": "mlserver_runtime.OnnxModel"}
    if model.max_queue_delay_us:  # adaptive batching configured like the kernelshim kernel
        settings.update(
            {"max_batch_size": model.max_batch_size, "max_batch_time": model.max_queue_delay_us / 1e6}
        )
    (model_dir / "model-settings.json").write_text(json.dumps(settings))
    mlserver = peer_envs.venv_python("mlserver").parent / "mlserver"
    env = _base_env(model, kernel, port, threads)
    env["PYTHONPATH"] = str(model_dir)
    return Launch([str(mlserver), "start", str(root)], env, f"/v2/models/{model.name}/ready", cwd=root)


def _bentoml(model: BenchModel, kernel: Path, port: int, threads: int, work: Path) -> Launch:
    bentoml = peer_envs.venv_python("bentoml").parent / "bentoml"
    env = _base_env(model, kernel, port, threads)
    env["BENTOML_HOME"] = str(work / "bentoml-home")
    # BentoML answers 503 to requests its batcher predicts will miss max_latency_ms; a tight value
    # turns load into errors, so it gets the generous setting its users start with
    env["BENCH_MAX_LATENCY_MS"] = "10000"
    env["BENTOML_DO_NOT_TRACK"] = "True"
    command = [
        str(bentoml),
        "serve",
        "benchmarks.peers.bentoml_service:OnnxService",
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    return Launch(command, env, "/readyz")


def _pytriton(model: BenchModel, kernel: Path, port: int, threads: int, work: Path) -> Launch:
    env = _base_env(model, kernel, port, threads)
    env["BENCH_ROW_SHAPE"] = ",".join(map(str, model.row_shape))
    out_dim = 4 if model.name == "mlp" else 10
    env["BENCH_OUT_SHAPE"] = str(out_dim)
    env["PYTRITON_HOME"] = str(work / "pytriton-home")
    # Triton's Python-backend stub links libpython3.X.so dynamically; make it the venv's own
    # interpreter's library (not, say, Debian's 3.11.2 under a pyenv 3.11.7 stdlib: they disagree).
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = ":".join(p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p)
    python = str(peer_envs.venv_python("pytriton"))
    return Launch([python, "-m", "benchmarks.peers.pytriton_server"], env, f"/v2/models/{model.name}/ready")


SYSTEMS = [
    System("kernelshim", None, kernelshim_launch, {"json": v2_json, "binary": v2_binary}, parse_v2,
           grpc=True),
    System(
        "triton (pytriton)",
        "pytriton",
        _pytriton,
        {"json": v2_json, "binary": v2_binary},
        parse_v2,
        "tritonserver from nvidia-pytriton; model = Python callable running onnxruntime",
        grpc=True,
    ),
    System(
        "mlserver",
        "mlserver",
        _mlserver,
        {"json": v2_json},
        parse_v2,
        "custom MLModel runtime wrapping onnxruntime, default settings",
        grpc=True,
    ),
    System(
        "bentoml",
        "bentoml",
        _bentoml,
        {"json": plain_json},
        parse_plain,
        "@bentoml.service, batchable numpy API",
    ),
    System(
        "fastapi",
        "fastapi",
        _fastapi,
        {"json": plain_json},
        parse_plain,
        "FastAPI + uvicorn, pydantic model, sync endpoint",
    ),
]


# -- process control -----------------------------------------------------------------------------


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


class RunningServer:
    """A server subprocess in its own process group, stopped with SIGTERM then SIGKILL."""

    def __init__(self, launch: Launch, port: int, log: Path) -> None:
        if _port_in_use(port):
            raise ServerFailed(
                f"port {port} on {HOST} is already in use (a server left over from another run?)"
            )
        self.base = f"http://{HOST}:{port}"
        self.launch = launch
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle = log.open("wb")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            launch.command,
            env=launch.env,
            cwd=launch.cwd,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float) -> float:
        deadline = self.started + timeout_s
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(f"exited with code {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base + self.launch.ready_path, timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.05)
        raise ServerFailed(f"not ready after {timeout_s:.0f}s: {self.log_tail()}")

    def post(self, payload: Payload) -> tuple[bytes, dict[str, str]]:
        headers = {"Content-Type": payload.content_type}
        if payload.header_length is not None:
            headers["Inference-Header-Content-Length"] = str(payload.header_length)
        request = urllib.request.Request(self.base + payload.path, data=payload.body, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read(), {k.lower(): v for k, v in response.headers.items()}

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            return response.read()

    def log_tail(self, lines: int = 6) -> str:
        self._log_handle.flush()
        text = self.log.read_text(errors="replace").strip().splitlines()[-lines:]
        return " | ".join(line[:300] for line in text)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
            except ProcessLookupError:
                pass
        self._log_handle.close()
