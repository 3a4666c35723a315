"""OpenTelemetry traces of inference requests (the optional ``tracing`` extra).

Off by default and free when off: the dataplane's ``tracer`` is None and each transport pays one
``if``. It is on when the standard variables ask for an exporter (``OTEL_TRACES_EXPORTER=otlp`` or
an ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``) and ``OTEL_SDK_DISABLED`` is not true; the SDK's OTLP/HTTP
exporter then reads the rest of its configuration (endpoint, headers, timeout, sampler via
``OTEL_TRACES_SAMPLER``, ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES``) itself.

A W3C ``traceparent`` (and ``tracestate``) on the request makes its spans part of the caller's trace;
the response carries the ``traceparent`` of the request span. Per request: the request span
(``infer``) and its children ``decode``, ``queue`` (wait for a batch slot), ``execute`` (the model
run, with batch size, rows and device) and ``encode``. The request path only records
``time.perf_counter()`` marks; the child spans are built from them when the request ends, with
their true start and end times.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from shim.spec.kernel import Kernel

log = logging.getLogger("shim.server")


def tracing_requested(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return exporter == "otlp" or bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracer_from_environment(kernel: Kernel) -> RequestTracer | None:
    if not tracing_requested():
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.warning(
            "tracing is off: OTEL_* ask for traces but the tracing extra is not installed; "
            "pip install 'kernelshim[tracing]'",
            extra={"missing": exc.name},
        )
        return None
    attributes = {
        "service.name": os.environ.get("OTEL_SERVICE_NAME") or f"kernelshim-{kernel.name}",
        "service.version": kernel.version,
        "kernelshim.model": kernel.name,
    }
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    log.info("tracing on: OTLP/HTTP export", extra={"service": attributes["service.name"]})
    return RequestTracer(provider, kernel)


class RequestTrace:
    """One request's marks; ``span`` is its live request span."""

    __slots__ = ("decoded", "encoded", "execution", "span", "started")

    def __init__(self, span: Any, started: float) -> None:
        self.span = span
        self.started = started
        self.decoded: float | None = None
        self.encoded: float | None = None
        #: filled by the batcher: [enqueued, started, finished, batch size, rows]
        self.execution: list[float] = []


class RequestTracer:
    def __init__(self, provider: Any, kernel: Kernel) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer = provider.get_tracer("kernelshim.server")
        self.propagator = TraceContextTextMapPropagator()
        self._server_kind = trace.SpanKind.SERVER
        self._set_span_in_context = trace.set_span_in_context
        self.kernel = kernel
        #: the device the model runs on, asked when a request ends (the model loads after start)
        self.device_of: Any = lambda: "cpu"
        #: wall clock minus the performance counter, taken once: every mark converts with the same
        #: offset, so spans keep the order of their marks (reading both clocks per conversion
        #: jittered by tens of nanoseconds and put a child's start before its parent's)
        self._offset_ns = time.time_ns() - time.perf_counter_ns()

    def _epoch_ns(self, perf: float) -> int:
        return int(perf * 1e9) + self._offset_ns

    def begin(self, carrier: dict[str, str], protocol: str, path: str, started: float) -> RequestTrace:
        parent = self.propagator.extract(carrier)
        span = self.tracer.start_span(
            "infer",
            context=parent,
            kind=self._server_kind,
            start_time=self._epoch_ns(started),
            attributes={
                "rpc.system" if protocol == "grpc" else "http.route": path,
                "kernelshim.protocol": protocol,
                "kernelshim.model": self.kernel.name,
                "kernelshim.model_version": self.kernel.version,
            },
        )
        return RequestTrace(span, started)

    def traceparent(self, trace: RequestTrace) -> str:
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier, context=self._set_span_in_context(trace.span))
        return carrier.get("traceparent", "")

    def end(self, trace: RequestTrace, status: int, request_id: str | None) -> None:
        """Child spans from the marks, then the request span; never raises into the request."""
        try:
            context = self._set_span_in_context(trace.span)
            now = time.perf_counter()

            def child(name: str, start: float, end: float, attributes: dict[str, Any] | None = None) -> None:
                span = self.tracer.start_span(
                    name, context=context, start_time=self._epoch_ns(start), attributes=attributes or {}
                )
                span.end(end_time=self._epoch_ns(end))

            if trace.decoded is not None:
                child("decode", trace.started, trace.decoded)
            if len(trace.execution) == 5:
                enqueued, began, finished, batch, rows = trace.execution
                child("queue", enqueued, began)
                child(
                    "execute",
                    began,
                    finished,
                    {
                        "kernelshim.batch_size": int(batch),
                        "kernelshim.rows": int(rows),
                        "kernelshim.device": str(self.device_of()),
                    },
                )
                if trace.encoded is not None:
                    child("encode", finished, trace.encoded)
            trace.span.set_attribute("http.response.status_code", status)
            if request_id:
                trace.span.set_attribute("kernelshim.request_id", request_id[:256])
            if status >= 500:
                from opentelemetry.trace import Status, StatusCode

                trace.span.set_status(Status(StatusCode.ERROR))
            trace.span.end(end_time=self._epoch_ns(now))
        except Exception:  # tracing must never fail a request
            log.debug("trace export failed", exc_info=True)

    def shutdown(self) -> None:
        try:
            self.provider.shutdown()
        except Exception:
            log.debug("tracer shutdown failed", exc_info=True)
