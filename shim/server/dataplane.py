"""The transport-independent dataplane: what REST and gRPC both do, written once.

As in KServe and MLServer, transports are thin: they turn their wire format into a
``DecodedRequest`` (``shim.protocol.codec`` for JSON, ``shim.protocol.grpc_codec`` for protobuf),
call the dataplane, and turn its answer or its ``DataplaneError`` back into their wire format. The
dataplane owns admission (authentication, per-client rate limit), readiness, model lookup,
metadata, submission to the batcher, the mapping of every failure to one error kind, and the
accounting (metrics labelled by protocol, audit log). ``ERRORS`` is the one table from an error
kind to its REST status and gRPC status code.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from shim import __version__
from shim.protocol.codec import Limits, ProtocolError
from shim.runtimes.base import OutOfMemory
from shim.server.audit import AuditLogger, fingerprint
from shim.server.batcher import ModelFailure, QueueFull
from shim.server.metrics import ServerMetrics
from shim.server.model_service import ModelService
from shim.server.monitoring.feedback import FeedbackError
from shim.server.monitoring.setup import build_monitor, build_tracer
from shim.server.ratelimit import RateLimiter
from shim.server.settings import ServerSettings
from shim.spec.kernel import Kernel

log = logging.getLogger("shim.server")

PLATFORMS = {
    "onnx": "onnxruntime_onnx",
    "torchscript": "pytorch_libtorch",
    "torch_export": "pytorch_torch_export",
}
EXTENSIONS = ["binary_tensor_data", "health", "metrics", "model_configuration", "statistics"]


@dataclass(frozen=True)
class ErrorKind:
    http: int
    grpc: str  # the name of a grpc.StatusCode


#: Every way a call can fail, and what each transport answers.
ERRORS: dict[str, ErrorKind] = {
    "invalid": ErrorKind(400, "INVALID_ARGUMENT"),
    "unauthenticated": ErrorKind(401, "UNAUTHENTICATED"),
    "not_found": ErrorKind(404, "NOT_FOUND"),
    "method": ErrorKind(405, "UNIMPLEMENTED"),
    "too_large": ErrorKind(413, "RESOURCE_EXHAUSTED"),
    "unsupported_encoding": ErrorKind(415, "INVALID_ARGUMENT"),
    "rate_limited": ErrorKind(429, "RESOURCE_EXHAUSTED"),
    "cancelled": ErrorKind(499, "CANCELLED"),
    "model_failed": ErrorKind(500, "INTERNAL"),
    "unavailable": ErrorKind(503, "UNAVAILABLE"),
}
_KIND_OF_STATUS = {kind.http: name for name, kind in ERRORS.items()}


class DataplaneError(Exception):
    """A failed call: ``kind`` is a key of ``ERRORS``; ``headers`` are REST-only extras."""

    def __init__(self, kind: str, message: str, headers: list[tuple[bytes, bytes]] | None = None,
                 retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.headers = list(headers or [])
        if retry_after_s is not None:
            self.headers.append((b"retry-after", str(retry_after_s).encode()))
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> int:
        return ERRORS[self.kind].http

    @property
    def grpc_code(self) -> str:
        return ERRORS[self.kind].grpc

    @classmethod
    def from_protocol(cls, exc: ProtocolError) -> DataplaneError:
        return cls(_KIND_OF_STATUS.get(exc.status, "invalid"), str(exc))


@dataclass
class Call:
    """One call's facts for accounting: who, over what, how it ended."""

    protocol: str  # "rest" or "grpc"
    client: str
    path: str
    started: float
    principal: str | None = None
    status: int = 200
    request_id: str | None = None


class Dataplane:
    """One process serving one kernel, whatever the transport."""

    def __init__(self, kernel: Kernel, settings: ServerSettings) -> None:
        self.kernel = kernel
        self.settings = settings
        self.metrics = ServerMetrics(kernel.name, kernel.version)
        self.in_flight = 0
        #: how many requests the HTTP server has received (headers parsed) and not yet answered,
        #: its handlers not yet started included; set by ``shim.server.main`` (uvicorn's request
        #: tasks), None where the server is not reachable (multi-process mode)
        self.arrived: Callable[[], int] | None = None
        self.service = ModelService(kernel, settings, self.metrics, self.requests_in_flight)
        # read at scrape time: the hot path only keeps its plain counter
        self.metrics.in_flight.set_function(lambda: self.in_flight)
        self.metrics.queue_depth.set_function(
            lambda: self.service.batcher.depth if self.service.batcher else 0)
        self.specs = {t.name: t for t in kernel.inputs}
        self.output_names = [t.name for t in kernel.outputs]
        self.limits = Limits(settings.max_elements_per_tensor, kernel.batching.max_batch_size)
        self.tokens = tuple(t.encode() for t in settings.auth_tokens)
        self.audit = (AuditLogger(kernel.name, kernel.version, settings.audit_log_inputs)
                      if settings.audit_log else None)
        self.limiter = (RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
                        if settings.rate_limit_per_s > 0 else None)
        #: one boolean on the hot path when authentication, rate limiting and audit are all off
        self.guarded = bool(self.tokens) or self.limiter is not None or self.audit is not None
        #: drift and live-accuracy monitoring; None (one ``if`` per request) without a profile
        self.monitor, self.monitoring_problem = build_monitor(kernel, self.metrics.registry)
        if self.monitor is not None:  # the batcher hands it every execution's requests
            self.service.observer = self.monitor.observe_execution
        #: OpenTelemetry tracer; None (one ``if`` per request) unless OTEL_* configure an exporter
        self.tracer = build_tracer(kernel)
        if self.tracer is not None:
            self.tracer.device_of = lambda: (self.service.batcher.runtime.device.kind
                                             if self.service.batcher is not None else "-")

    # -- admission ------------------------------------------------------------------------------
    def admit(self, call: Call, presented: bytes | None, host: str) -> None:
        """Authentication, then the caller's rate limit (never for health and metrics)."""
        if self.tokens:
            call.principal = fingerprint(presented) if presented else None
            if not presented or not any(hmac.compare_digest(presented, t) for t in self.tokens):
                reason = "missing credentials" if not presented else "invalid credentials"
                log.warning("unauthorized request", extra={"path": call.path, "client": call.client,
                                                           "reason": reason, "protocol": call.protocol})
                raise DataplaneError("unauthenticated", f"{reason}: send 'Authorization: Bearer <token>' "
                                     "(REST: or 'X-API-Key: <token>')",
                                     [(b"www-authenticate", b'Bearer realm="kernelshim"')])
        if self.limiter is not None:
            wait_s = self.limiter.acquire(call.principal or host)
            if wait_s:
                raise DataplaneError(
                    "rate_limited", f"rate limit of {self.settings.rate_limit_per_s:g} requests/s exceeded "
                    f"for this client; retry after {wait_s:.3f}s",
                    [(b"retry-after", RateLimiter.retry_after_header(wait_s))])

    # -- lookups and metadata ---------------------------------------------------------------------
    def check_model(self, name: str, version: str | None) -> None:
        if name != self.kernel.name:
            raise DataplaneError("not_found",
                                 f"unknown model {name!r}; this server serves {self.kernel.name!r}")
        if version not in (None, "", self.kernel.version):
            raise DataplaneError("not_found", f"unknown version {version!r} of model {name!r}; "
                                 f"available: {self.kernel.version}")

    @property
    def ready(self) -> bool:
        return self.service.ready

    def readiness(self) -> dict[str, Any]:
        service = self.service
        if service.ready:
            return {"ready": True}
        return {"ready": False, "state": service.state, "reason": service.reason}

    def server_metadata(self) -> dict[str, Any]:
        return {
            "name": "kernelshim",
            "version": __version__,
            "extensions": EXTENSIONS,
            "model": {"name": self.kernel.name, "version": self.kernel.version, "state": self.service.state},
            "runtime": self.service.describe_runtime(),
        }

    def model_metadata(self) -> dict[str, Any]:
        kernel = self.kernel
        return {
            "name": kernel.name,
            "versions": [kernel.version],
            "platform": PLATFORMS[kernel.framework],
            "inputs": [t.to_v2() for t in kernel.inputs],
            "outputs": [t.to_v2() for t in kernel.outputs],
        }

    def model_config(self) -> dict[str, Any]:
        """The model as a Triton model configuration (what tritonclient's get_model_config shows)."""
        batching = self.kernel.batching
        strip = 1 if batching.enabled else 0

        def tensor(t: Any) -> dict[str, Any]:
            data_type = "STRING" if t.datatype.is_bytes else t.datatype.name
            return {"name": t.name, "data_type": f"TYPE_{data_type}", "dims": list(t.shape[strip:])}

        config: dict[str, Any] = {
            "name": self.kernel.name,
            "platform": PLATFORMS[self.kernel.framework],
            "max_batch_size": batching.max_batch_size,
            "input": [tensor(t) for t in self.kernel.inputs],
            "output": [tensor(t) for t in self.kernel.outputs],
        }
        if batching.enabled:
            config["dynamic_batching"] = {"max_queue_delay_microseconds": batching.max_queue_delay_us}
        return config

    def model_stats(self) -> dict[str, Any]:
        return {"model_stats": [{"name": self.kernel.name, "version": self.kernel.version,
                                 "state": self.service.state, "inflight": self.in_flight}]}

    # -- inference --------------------------------------------------------------------------------
    def check_ready_for_inference(self) -> None:
        service = self.service
        if not service.ready and service.state != "draining":  # draining: finish what still arrives
            raise DataplaneError("unavailable", f"model {self.kernel.name!r} is not ready: {service.reason}",
                                 retry_after_s=self.settings.retry_after_s)

    def request_id(self, given: str | None) -> str | None:
        """The request's id: the caller's, or (when monitoring, so feedback can name it) a new one."""
        if not given and self.monitor is not None:
            return self.monitor.new_id()
        return given or None

    async def infer(self, inputs: dict[str, np.ndarray], request_id: str | None = None,
                    trace: list[float] | None = None) -> dict[str, np.ndarray]:
        """Submit decoded inputs to the batcher; every failure becomes a ``DataplaneError``."""
        batcher = self.service.batcher
        if batcher is None:
            raise DataplaneError("unavailable", f"model {self.kernel.name!r} is not ready: "
                                 f"{self.service.reason}", retry_after_s=self.settings.retry_after_s)
        try:
            return await batcher.submit(inputs, trace, request_id)
        except QueueFull as exc:
            raise DataplaneError("unavailable", f"{exc}; retry later",
                                 retry_after_s=self.settings.retry_after_s) from None
        except OutOfMemory as exc:
            raise DataplaneError("unavailable", str(exc), retry_after_s=self.settings.retry_after_s) from None
        except ModelFailure as exc:
            raise DataplaneError("model_failed", str(exc)) from None

    def requests_in_flight(self) -> int:
        """What the batcher counts as company: the requests in a handler or, when known, every
        request that has arrived. Under load on one event loop a fast model's request runs to its
        end in one step, so no two handlers ever overlap; counted by handlers alone, concurrent
        clients looked like one, the model ran inline on the loop and nothing was batched (a state
        that kept itself going: measured 5,045 req/s and p99 15-55 ms at c=32 on the MLP, against
        5,720 req/s and p99 8-10 ms through the worker). The requests that have arrived but not
        started are exactly the ones that could share an execution."""
        arrived = self.arrived
        return self.in_flight if arrived is None else max(self.in_flight, arrived())

    # -- monitoring -------------------------------------------------------------------------------
    def monitoring_report(self) -> dict[str, Any]:
        if self.monitor is None:
            raise DataplaneError("not_found", self.monitoring_problem or "monitoring is off")
        return self.monitor.full_report()

    def feedback(self, document: Any) -> dict[str, Any]:
        if self.monitor is None:
            raise DataplaneError("not_found", self.monitoring_problem or "monitoring is off")
        try:
            return self.monitor.receive_feedback(document)
        except FeedbackError as exc:
            raise DataplaneError(exc.kind, str(exc)) from None

    # -- accounting -------------------------------------------------------------------------------
    def finish(self, call: Call, arrays: Mapping[str, np.ndarray] | None = None, document: Any = None,
               error: str | None = None) -> None:
        """Metrics, audit and the log line of one inference call, whatever its transport."""
        elapsed = time.perf_counter() - call.started
        self.metrics.request_seconds.observe(elapsed)
        self.metrics.count(call.status, call.protocol)
        if self.audit is not None:
            self.audit.record(client=call.client, principal=call.principal, path=call.path,
                              status=call.status, latency_s=elapsed, request_id=call.request_id,
                              arrays=arrays, document=document, error=error)
        if call.status != 200:
            log.info("inference rejected", extra={
                "request_id": call.request_id or "-", "status": call.status, "client": call.client,
                "protocol": call.protocol, "duration_ms": round(elapsed * 1000, 3)})
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("inference", extra={"request_id": call.request_id or "-", "status": call.status,
                                          "protocol": call.protocol, "duration_ms": round(elapsed * 1000, 3)})
