"""Prometheus metrics of the server, in their own registry (one per process).

Names follow Prometheus conventions (base units, ``_total`` counters); labels are bounded:
model, version, protocol (rest or grpc) and status code only.

The per-request series (request counts, the four latency/batch histograms) are recorded without
locks and rendered by a ``prometheus_client`` collector at scrape time: ``Histogram.observe``
takes a mutex per bucket and per sum (two lock round trips and about 1 us each), and with four
histograms and a counter per request that was 10 us of CPU per inference call (a tenth of the
in-process REST path, measured with cProfile). Each writing thread (event loop, model worker)
has its own shard, so no increment is ever lost without a lock; a scrape adds the shards up.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _Shards:
    """Per-thread lists of numbers, written without locks (one writer per list), summed on read."""

    def __init__(self, width: int) -> None:
        self._width = width
        self._by_thread: dict[int, list[Any]] = {}
        self._lock = threading.Lock()  # only for adding a thread's shard

    def mine(self) -> list[Any]:
        shard = self._by_thread.get(threading.get_ident())
        if shard is None:
            with self._lock:
                shard = self._by_thread.setdefault(threading.get_ident(), [0] * self._width)
        return shard

    def total(self) -> list[Any]:
        shards = list(self._by_thread.values())
        return [sum(column) for column in zip(*shards, strict=True)] if shards else [0] * self._width


class FastHistogram:
    """A histogram with ``observe`` at the cost of a bisect and two additions."""

    def __init__(self, name: str, documentation: str, labels: dict[str, str],
                 buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.bounds = tuple(float(b) for b in buckets)
        self._slots = len(self.bounds) + 1  # the last bucket is +Inf; the sum follows the counts
        self._shards = _Shards(self._slots + 1)

    def observe(self, value: float) -> None:
        shard = self._shards.mine()
        shard[bisect_left(self.bounds, value)] += 1  # first bound >= value: Prometheus' "le"
        shard[-1] += value

    def family(self) -> HistogramMetricFamily:
        values = self._shards.total()
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), values[:-1], strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        family = HistogramMetricFamily(self.name, self.documentation, labels=list(self.labels))
        family.add_metric(list(self.labels.values()), buckets, float(values[-1]))
        return family


class FastCounter:
    """A counter by one extra label set (protocol, code), counted without locks."""

    def __init__(self, name: str, documentation: str, labels: dict[str, str], keys: Sequence[str]) -> None:
        self.name, self.documentation, self.labels, self.keys = name, documentation, labels, tuple(keys)
        self._shards: dict[int, dict[tuple[str, ...], int]] = {}
        self._lock = threading.Lock()

    def inc(self, key: tuple[str, ...]) -> None:
        shard = self._shards.get(threading.get_ident())
        if shard is None:
            with self._lock:
                shard = self._shards.setdefault(threading.get_ident(), {})
        shard[key] = shard.get(key, 0) + 1

    def family(self) -> CounterMetricFamily:
        totals: dict[tuple[str, ...], int] = {}
        for shard in list(self._shards.values()):
            for key, value in list(shard.items()):
                totals[key] = totals.get(key, 0) + value
        family = CounterMetricFamily(self.name, self.documentation, labels=[*self.labels, *self.keys])
        for key, value in sorted(totals.items()):
            family.add_metric([*self.labels.values(), *key], value)
        return family


class _Collector:
    def __init__(self, metrics: Sequence[FastHistogram | FastCounter]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        for metric in self.metrics:
            yield metric.family()


class ServerMetrics:
    def __init__(self, model: str, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version")
        values = {"model": model, "version": version}
        self.requests = FastCounter(
            "shim_inference_requests",
            "Inference requests by transport and final status (the HTTP status code; for gRPC the HTTP "
            "status of the same outcome, so both transports share one code vocabulary).",
            values, ("protocol", "code"),
        )
        self.request_seconds = FastHistogram(
            "shim_request_duration_seconds", "Inference request time from body received to response.",
            values, _LATENCY_BUCKETS,
        )
        self.queue_seconds = FastHistogram(
            "shim_queue_duration_seconds", "Time a request waited for a batch slot.", values,
            _LATENCY_BUCKETS,
        )
        self.compute_seconds = FastHistogram(
            "shim_compute_duration_seconds", "Model execution time per batch.", values, _LATENCY_BUCKETS,
        )
        self.batch_size = FastHistogram(
            "shim_batch_size", "Requests merged into one model execution.", values, _BATCH_BUCKETS,
        )
        self.registry.register(_Collector([self.requests, self.request_seconds, self.queue_seconds,
                                           self.compute_seconds, self.batch_size]))
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
        self._codes: dict[tuple[int, str], tuple[str, str]] = {}

    def count(self, code: int, protocol: str = "rest") -> None:
        key = self._codes.get((code, protocol))
        if key is None:
            key = self._codes[(code, protocol)] = (protocol, str(code))
        self.requests.inc(key)
