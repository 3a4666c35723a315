"""The confidence histogram of probability outputs, filled a window's worth of values at a time.

``prometheus_client.Histogram`` takes one value per ``observe`` call (a lock and a bucket search in
Python each); the monitor thread has a whole drained batch as one array, so it counts it with one
``numpy.searchsorted`` + ``bincount`` and this collector exposes the counts in the same exposition
a ``Histogram`` would (``_bucket{le=...}`` cumulative, ``_count``, ``_sum``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

NAME = "shim_prediction_confidence"
DOCUMENTATION = "Top probability of probability outputs."
LABELS = ("model", "version", "output")


class ConfidenceHistogram(Collector):
    def __init__(self, model: str, version: str, buckets: Sequence[float]) -> None:
        self._model = model
        self._version = version
        self._bounds = np.asarray(sorted(buckets), dtype=np.float64)
        self._lock = threading.Lock()
        self._counts: dict[str, np.ndarray] = {}  # per output: per bucket, then +Inf (not cumulative)
        self._sums: dict[str, float] = {}

    def observe(self, output: str, values: np.ndarray) -> None:
        """Count ``values`` (one top probability per row): a value goes to the first bucket whose
        upper bound is >= it, as Prometheus's ``le`` says; NaN goes to +Inf and not into the sum."""
        values = np.asarray(values, dtype=np.float64)
        index = np.searchsorted(self._bounds, values, side="left")
        counts = np.bincount(index, minlength=len(self._bounds) + 1)
        finite = values[~np.isnan(values)]
        with self._lock:
            if output in self._counts:
                self._counts[output] += counts
                self._sums[output] += float(finite.sum())
            else:
                self._counts[output] = counts.astype(np.int64)
                self._sums[output] = float(finite.sum())

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(NAME, DOCUMENTATION, labels=LABELS)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(NAME, DOCUMENTATION, labels=LABELS)
        with self._lock:
            snapshot = {name: (counts.copy(), self._sums[name]) for name, counts in self._counts.items()}
        for output, (counts, total) in sorted(snapshot.items()):
            cumulative = np.cumsum(counts).tolist()
            buckets = [(floatToGoString(bound), count) for bound, count in
                       zip(self._bounds.tolist(), cumulative, strict=False)]
            buckets.append(("+Inf", cumulative[-1]))
            family.add_metric([self._model, self._version, output], buckets, total)
        yield family
