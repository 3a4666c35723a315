"""Run the server: static validation, then uvicorn with graceful drain on SIGTERM.

The kernel is checked statically before the port opens (an invalid kernel never starts). The
model itself is loaded after the server is live, so readiness reports why a model is not
serving. SIGTERM first marks the model not ready and keeps answering, each response closing its
connection, until the clients have gone quiet (at most ``drain_s``); then uvicorn stops accepting
connections, finishes every in-flight request and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from typing import Any

import uvicorn

from shim.contract.kernel import read_kernel
from shim.runtimes.cpu_quota import available_cpus
from shim.server.app import InferenceApp
from shim.server.deployment import apply_deployment
from shim.server.logs import configure_logging
from shim.server.settings import ServerSettings
from shim.spec.kernel import Kernel

SETTINGS_ENV = "KERNELSHIM_SERVE_SETTINGS_JSON"
log = logging.getLogger("shim.server")


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining before it closes on SIGTERM.

    uvicorn alone closes the listener and every idle keep-alive connection at once; a client that
    is just writing its next request on one gets a reset for a request the server never read.
    Here the server first marks the model not ready and answers on, each response with
    ``Connection: close``, so every client learns to reconnect from an answer instead of a reset;
    it closes once no request has begun for ``QUIET_S``, no connection is left, or ``drain_s``
    has passed (Kubernetes also keeps routing to a terminating pod for a moment).
    """

    #: clients that have sent nothing for this long are taken to have stopped
    QUIET_S = 0.25
    POLL_S = 0.02

    def __init__(self, config: uvicorn.Config, app: InferenceApp) -> None:
        super().__init__(config)
        self.inference_app = app
        # uvicorn's set of request tasks: one per request whose headers it has parsed
        app.dataplane.arrived = self.server_state.tasks.__len__

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.inference_app.service.drain()
        self.inference_app.closing = True
        log.info("shutdown signal received; draining", extra={"in_flight": self.inference_app.in_flight})
        super().handle_exit(sig, frame)
        # uvicorn >= 0.29 re-raises captured signals after its shutdown, which would end the process
        # killed by SIGTERM (exit -15) after a clean drain; a drained SIGTERM is a normal exit 0.
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list) and sig == signal.SIGTERM:
            captured[:] = [s for s in captured if s != signal.SIGTERM]

    async def shutdown(self, sockets: Any = None) -> None:
        if self.inference_app.closing:
            await self._until_quiet(self.inference_app.settings.drain_s)
        await super().shutdown(sockets)

    async def _until_quiet(self, limit_s: float) -> None:
        app = self.inference_app
        deadline = time.monotonic() + limit_s
        begun, quiet_since = app.requests_begun, time.monotonic()
        while not self.force_exit and self.server_state.connections:
            now = time.monotonic()
            if now >= deadline or now - quiet_since >= self.QUIET_S:
                return
            await asyncio.sleep(self.POLL_S)
            if app.requests_begun != begun:
                begun, quiet_since = app.requests_begun, time.monotonic()


def _per_worker_threads(settings: ServerSettings) -> int:
    return settings.threads or max(1, available_cpus() // max(1, settings.workers))


def build_app(settings: ServerSettings, kernel: Kernel | None = None) -> InferenceApp:
    """The app for ``kernel`` as the deployment serves it (``shim serve`` has applied the
    deployment's settings already); without one, read and apply them here (worker processes)."""
    if kernel is None:
        kernel = apply_deployment(read_kernel(settings.kernel_dir), settings)
    settings = ServerSettings(**{**settings.__dict__, "threads": _per_worker_threads(settings)})
    app = InferenceApp(kernel, settings)
    if settings.grpc_port:
        try:
            from shim.server.grpc_transport import GrpcTransport
        except ImportError as exc:  # an image built without the grpc extra still serves REST, and says so
            log.warning("gRPC is off: its libraries are not installed; pip install 'kernelshim[grpc]'",
                        extra={"missing": exc.name})
            return app
        app.companions.append(GrpcTransport(app.dataplane, settings.host, settings.grpc_port,
                                            reuse_port=settings.workers > 1))
    return app


def app_from_environment() -> InferenceApp:
    """Factory for uvicorn's multi-process mode: each worker rebuilds the app from the settings."""
    settings = ServerSettings.from_json(os.environ[SETTINGS_ENV])
    configure_logging(settings.log_format, settings.log_level)
    tune_interpreter(settings)
    return build_app(settings)


def tune_interpreter(settings: ServerSettings) -> None:
    """A short GIL switch interval: the event loop and the model worker share the interpreter, and
    the worker, back from a native model call, must not queue 5 ms behind request decoding."""
    if settings.gil_switch_interval_us > 0:
        sys.setswitchinterval(settings.gil_switch_interval_us / 1_000_000)


def _uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "http": "httptools",
        "loop": "uvloop" if os.name != "nt" else "asyncio",
        "lifespan": "on",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": settings.graceful_timeout_s,
        "backlog": 2048,
        "timeout_keep_alive": 30,
        "server_header": False,
    }


def serve(settings: ServerSettings, kernel: Kernel) -> int:
    configure_logging(settings.log_format, settings.log_level)
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = settings.to_json()
        uvicorn.run("shim.server.main:app_from_environment", factory=True, workers=settings.workers,
                    **_uvicorn_options(settings))
        return 0
    tune_interpreter(settings)
    app = build_app(settings, kernel)
    server = DrainingServer(uvicorn.Config(app, **_uvicorn_options(settings)), app)
    log.info("starting", extra={"model": kernel.name, "version": kernel.version, "host": settings.host,
                                "port": settings.port, "grpc_port": settings.grpc_port,
                                "device": settings.device,
                                "threads": app.settings.threads})
    server.run()
    return 0 if server.started else 1
