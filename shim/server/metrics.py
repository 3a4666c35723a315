"""Prometheus metrics of the server, in their own registry (one per process).

Names follow Prometheus conventions (base units, ``_total`` counters); labels are bounded:
model, version, protocol (rest or grpc) and status code only.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    def __init__(self, model: str, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version")
        self.requests = Counter(
            "shim_inference_requests",
            "Inference requests by transport and final status (the HTTP status code; for gRPC the HTTP "
            "status of the same outcome, so both transports share one code vocabulary).",
            (*labels, "protocol", "code"), registry=self.registry,
        )
        self.request_seconds = Histogram(
            "shim_request_duration_seconds", "Inference request time from body received to response.",
            labels, buckets=_LATENCY_BUCKETS, registry=self.registry,
        ).labels(model, version)
        self.queue_seconds = Histogram(
            "shim_queue_duration_seconds", "Time a request waited for a batch slot.",
            labels, buckets=_LATENCY_BUCKETS, registry=self.registry,
        ).labels(model, version)
        self.compute_seconds = Histogram(
            "shim_compute_duration_seconds", "Model execution time per batch.",
            labels, buckets=_LATENCY_BUCKETS, registry=self.registry,
        ).labels(model, version)
        self.batch_size = Histogram(
            "shim_batch_size", "Requests merged into one model execution.",
            labels, buckets=_BATCH_BUCKETS, registry=self.registry,
        ).labels(model, version)
        self.in_flight = Gauge(
            "shim_inflight_requests", "Inference requests being processed.", labels, registry=self.registry,
        ).labels(model, version)
        self.queue_depth = Gauge(
            "shim_queue_depth", "Requests waiting for the model.", labels, registry=self.registry,
        ).labels(model, version)
        self.load_seconds = Gauge(
            "shim_model_load_seconds", "Time to load the model and run the golden samples.",
            labels, registry=self.registry,
        ).labels(model, version)
        self.ready = Gauge("shim_model_ready", "1 when the model serves requests.", labels,
                           registry=self.registry).labels(model, version)
        self.gpu_memory_used = Gauge(
            "shim_gpu_memory_used_bytes", "GPU memory allocated by the model's runtime.", labels,
            registry=self.registry,
        ).labels(model, version)
        self.gpu_memory_reserved = Gauge(
            "shim_gpu_memory_reserved_bytes", "GPU memory reserved by the model's runtime.", labels,
            registry=self.registry,
        ).labels(model, version)
        self.oom = Counter("shim_out_of_memory", "Batches that ran out of device memory.", labels,
                           registry=self.registry).labels(model, version)
        self._request_counters: dict[tuple[int, str], object] = {}
        self._model, self._version = model, version

    def count(self, code: int, protocol: str = "rest") -> None:
        counter = self._request_counters.get((code, protocol))
        if counter is None:
            counter = self.requests.labels(self._model, self._version, protocol, str(code))
            self._request_counters[(code, protocol)] = counter
        counter.inc()  # type: ignore[attr-defined]
