"""The lock-free per-request metrics render exactly what prometheus_client's own types would."""

from __future__ import annotations

import random
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shim.server.metrics import _BATCH_BUCKETS, _LATENCY_BUCKETS, ServerMetrics


def _samples(registry: CollectorRegistry, family_name: str) -> dict[tuple, float]:
    text = generate_latest(registry).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == family_name:
            for sample in family.samples:
                if not sample.name.endswith("_created"):
                    found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_histograms_and_counts_match_prometheus_client_across_threads() -> None:
    ours = ServerMetrics("iris", "0.1.0")
    reference = CollectorRegistry()
    latency = Histogram("shim_request_duration_seconds", "x", ("model", "version"), buckets=_LATENCY_BUCKETS,
                        registry=reference).labels("iris", "0.1.0")
    batches = Histogram("shim_batch_size", "x", ("model", "version"), buckets=_BATCH_BUCKETS,
                        registry=reference).labels("iris", "0.1.0")
    requests = Counter("shim_inference_requests", "x", ("model", "version", "protocol", "code"),
                       registry=reference)
    rng = random.Random(7)
    # values on, below and above every bound, +Inf territory included
    values = [*_LATENCY_BUCKETS, *(b * 0.999 for b in _LATENCY_BUCKETS), 0.0, 11.0, 1e9,
              *(rng.uniform(0, 0.02) for _ in range(500))]
    sizes = [rng.randint(1, 2000) for _ in range(300)]
    codes = [(rng.choice((200, 200, 400, 503)), rng.choice(("rest", "grpc"))) for _ in range(400)]

    def write(part: int) -> None:
        for value in values[part::3]:
            ours.request_seconds.observe(value)
        for size in sizes[part::3]:
            ours.batch_size.observe(size)
        for code, protocol in codes[part::3]:
            ours.count(code, protocol)

    threads = [threading.Thread(target=write, args=(part,)) for part in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for value in values:
        latency.observe(value)
    for size in sizes:
        batches.observe(size)
    for code, protocol in codes:
        requests.labels("iris", "0.1.0", protocol, str(code)).inc()

    for name in ("shim_request_duration_seconds", "shim_batch_size", "shim_inference_requests"):
        got, want = _samples(ours.registry, name), _samples(reference, name)
        assert want and got.keys() == want.keys(), name
        for key, value in want.items():
            assert abs(got[key] - value) <= 1e-9 * max(1.0, abs(value)), (key, got[key], value)
