"""Real `shim serve` processes on loopback for the security and fault tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IRIS = REPO / "examples" / "kernels" / "iris-classifier"
SHIM = [sys.executable, "-m", "shim.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """One `shim serve` subprocess; stderr (the JSON log) goes to a file the tests can read."""

    def __init__(
        self, kernel: Path, log_path: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                *SHIM,
                "serve",
                str(kernel),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--threads",
                "1",
                "--log-format",
                "json",
                *(() if "--grpc-port" in args else ("--grpc-port", "0")),
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=REPO,
        )

    def wait_ready(self, timeout: float = 60.0, expect_ready: bool = True) -> dict:
        deadline = time.monotonic() + timeout
        last: dict = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.base + "/v2/health/ready", timeout=2) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                last = json.loads(exc.read() or b"{}")
                if not expect_ready and last.get("state") == "failed":
                    return last
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout}s ({last}):\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict]:
        records = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    records.append(json.loads(line))
        return records

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    started: list[ServerProcess] = []

    def start(
        kernel: Path = IRIS,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        name: str = "server",
    ) -> ServerProcess:
        server = ServerProcess(kernel, tmp_path / f"{name}-{len(started)}.log", env, args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def copy_kernel(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination
