"""Fixtures that run ``shim serve`` as a real process on a free loopback port.

Every server test talks to a real uvicorn process over real HTTP (127.0.0.1 only). Servers for
the example kernels are shared per module to keep the suite fast; tests that need special
options (tiny body limit, queue of one, auth) start their own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
KERNELS = REPO / "examples" / "kernels"
SHIM = [sys.executable, "-m", "shim.cli.main"]
READY_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A running ``shim serve``; ``url`` is its base URL, ``log`` its stderr file."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    kernel: Path
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_records(self) -> list[dict]:
        records = []
        for line in self.logs().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, expect_ready: bool = True) -> httpx.Response:
        """Poll readiness until ready (or, with ``expect_ready=False``, until the model has failed)."""
        deadline = time.monotonic() + timeout
        last: httpx.Response | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"shim serve exited with {self.process.returncode}:\n{self.logs()[-4000:]}"
                )
            try:
                last = httpx.get(self.url + "/v2/health/ready", timeout=2.0)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if expect_ready and last.status_code == 200:
                return last
            if not expect_ready and last.status_code == 503 and last.json().get("state") == "failed":
                return last
            time.sleep(0.1)
        raise AssertionError(
            f"server not {'ready' if expect_ready else 'failed'} after {timeout}s "
            f"(last: {last.text if last else 'no answer'}):\n{self.logs()[-4000:]}"
        )

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def start_server(
    kernel: Path, log_dir: Path, *args: str, env: dict[str, str] | None = None, wait: bool = True
) -> ServerProcess:
    """Start ``shim serve KERNEL --host 127.0.0.1 --port <free>`` and (by default) wait for ready."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"serve-{kernel.name}-{port}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KERNELSHIM_")}
    environment.update(env or {})
    command = [
        *SHIM,
        "serve",
        str(kernel),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--threads",
        "1",
        *(() if "--grpc-port" in args else ("--grpc-port", "0")),  # gRPC tests pick their own port
        *args,
    ]
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=environment, cwd=REPO
        )
    server = ServerProcess(process, port, log, kernel, list(args))
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
    return server


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Start servers that all stop (SIGTERM, then kill) when the module's tests are done."""
    started: list[ServerProcess] = []
    log_dir = tmp_path_factory.mktemp("serve-logs")

    def factory(
        kernel: Path, *args: str, env: dict[str, str] | None = None, wait: bool = True
    ) -> ServerProcess:
        server = start_server(kernel, log_dir, *args, env=env, wait=wait)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def iris_server(server_factory) -> ServerProcess:
    return server_factory(KERNELS / "iris-classifier")


@pytest.fixture(scope="module")
def ranker_server(server_factory) -> ServerProcess:
    return server_factory(KERNELS / "two-input-ranker")


@pytest.fixture(scope="module")
def mlp_server(server_factory) -> ServerProcess:
    return server_factory(KERNELS / "torchscript-mlp")


def golden(kernel: Path) -> dict:
    """The kernel's first golden sample (request and expected outputs)."""
    return json.loads(sorted((kernel / "samples").glob("*.json"))[0].read_text())


@pytest.fixture(scope="session")
def slow_kernel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernel whose model takes ~0.2 s per call regardless of batch size (see slow_kernel.py)."""
    from .slow_kernel import build_slow_kernel

    return build_slow_kernel(tmp_path_factory.mktemp("slow-kernel"))


def metric_samples(text: str, name: str) -> dict[str, float]:
    """``{labels-string: value}`` for one metric family in Prometheus text format."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                key = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                found[key] = sample.value
    return found
