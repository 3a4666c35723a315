"""The monitor: served rows observed off the hot path, tested per window, alerts raised.

The batcher hands every model execution to ``observe_execution`` (when the kernel has a profile):
the request ids of the execution, the inputs the model ran on (a batch's merged arrays), its
outputs and each request's rows, appended as references to a bounded deque (no copy, no
statistics; the oldest executions are dropped, and counted, if the monitor ever falls that far
behind). Per execution, not per request: under load one execution carries tens of requests, and
the monitor thread then merges a few arrays per drain instead of one per request. A daemon
thread drains the deque every ``POLL_S``, turns executions into per-feature columns with the same
``feature_columns`` the profiler used, and when a window is full (``window.rows`` rows, or
``window.seconds`` with at least ``min_rows``) tests every feature and output against the profile
(``shim.server.monitoring.drift``), corrects across them, and updates the Prometheus metrics, the
report ``GET /v2/models/{name}/monitoring`` returns, and the alert state. A feature alerts after
``windows_in_a_row`` drifting windows in a row; the log says so once when it starts and once when
it clears.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import operator
import os
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from shim.server.monitoring.drift import TESTS, TestResult, correct, ks_many, uses_limiting_distribution
from shim.server.monitoring.feedback import FeedbackError, FeedbackStore
from shim.server.monitoring.histogram import ConfidenceHistogram
from shim.spec.kernel import Kernel
from shim.spec.monitoring import (
    MonitoringSpec,
    Profile,
    category_key,
    feature_columns,
    feature_layout,
    output_values,
)

log = logging.getLogger("shim.server")

POLL_S = 0.05
#: Observed executions waiting for the monitor thread; beyond it the oldest are dropped.
MAX_PENDING = 65536
MAX_CLASS_LABELS = 64
_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
_SHOWN = {"ks": "KS D", "chi2": "chi-squared", "psi": "PSI"}


#: Observed executions merged into one piece of work by the monitor thread.
DRAIN_BATCH = 256
#: The monitor thread sleeps this long after each piece of work (a drained batch, one feature's
#: test), so that the event loop, if it waits for the GIL, takes it then. Without it the loop
#: could wait a whole switch interval (5 ms, CPython's default, which fast models run with) behind
#: background statistics. A voluntary release without a sleep does not hand the GIL over: the
#: releasing thread takes it back before the waiter wakes.
YIELD_S = 0.00005
_TAGS = operator.itemgetter(0)
_INPUTS = operator.itemgetter(1)
_OUTPUTS = operator.itemgetter(2)

#: One observed execution: its requests' ids (None: the request has none), the inputs the model
#: ran on, its outputs, and each request's rows (None: one request, its rows are the outputs')
Observed = tuple[list[Any], dict[str, np.ndarray], dict[str, np.ndarray], list[int] | None]


def _merged(items: list[Any]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """The drained requests' inputs and outputs concatenated per name in one step, or None when they
    do not all have the same names, dtypes and row shapes (a scalar, another dtype, a dynamic dim):
    those are split by ``_groups``. The server decodes every request to the contract's datatypes,
    so the common case is one concatenation per name per drain, not per-request work."""
    first_inputs, first_outputs = items[0][1], items[0][2]
    input_names, output_names = first_inputs.keys(), first_outputs.keys()
    # as many names in all as the first request has times the requests, and (KeyError below) each
    # of the first's names in every request: so every request has exactly the first's names
    if sum(map(len, map(_INPUTS, items))) != len(input_names) * len(items) or sum(
        map(len, map(_OUTPUTS, items))
    ) != len(output_names) * len(items):
        return None
    try:
        inputs = {
            name: np.concatenate(list(map(operator.itemgetter(name), map(_INPUTS, items))),
                                 dtype=first_inputs[name].dtype,
                                 casting="no")
            for name in input_names
        }
        outputs = {
            name: np.concatenate(list(map(operator.itemgetter(name), map(_OUTPUTS, items))),
                                 dtype=first_outputs[name].dtype,
                                 casting="no")
            for name in output_names
        }
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
    return inputs, outputs


def _groups(items: list[Any]) -> list[list[Any]]:
    """Consecutive observed requests whose arrays can be concatenated (same names, dtypes, row shapes)."""
    groups: list[list[Any]] = []
    last = None
    for item in items:
        try:
            key = (
                tuple((n, a.dtype.str, a.shape[1:]) for n, a in item[1].items()),
                tuple((n, a.dtype.str, a.shape[1:]) for n, a in item[2].items()),
            )
            if any(a.ndim == 0 for a in item[1].values()) or any(a.ndim == 0 for a in item[2].values()):
                key = None
        except AttributeError:
            key = None
        if key is not None and key == last and groups:
            groups[-1].append(item)
        else:
            groups.append([item])
        last = key
    return groups


class _Series:
    """One monitored series (a feature or an output): its reference, test and window values."""

    def __init__(
        self, name: str, kind: str, test: str, reference: Any, output_kind: str | None = None
    ) -> None:
        self.name = name
        self.kind = kind  # "continuous" / "categorical"
        self.test = test
        self.reference = reference
        self.output_kind = output_kind
        self.chunks: list[np.ndarray] = []
        self.streak = 0
        self.alerting = False
        # this series' Prometheus children, looked up once (``labels`` costs microseconds a call)
        self.statistic_gauge: Any = None
        self.p_value_gauge: Any = None
        self.alert_gauge: Any = None


class Monitor:
    def __init__(
        self, kernel: Kernel, profile: Profile, spec: MonitoringSpec, registry: CollectorRegistry
    ) -> None:
        self.kernel = kernel
        self.profile = profile
        self.spec = spec
        self.layout = [
            s for s in feature_layout(kernel, spec) if any(f.name == s.name for f in profile.features)
        ]
        self.series: dict[str, _Series] = {}
        for feature in profile.features:
            default = "ks" if feature.kind == "continuous" else "chi2"
            self.series[feature.name] = _Series(
                feature.name, feature.kind, spec.tests.get(feature.name, default), feature.reference
            )
        for output in profile.outputs:
            kind = spec.outputs.get(output.name, output.kind)
            if kind == "ignore":
                continue
            categorical = output.kind == "label"
            default = "chi2" if categorical else "ks"
            self.series[output.name] = _Series(
                output.name,
                "categorical" if categorical else "continuous",
                spec.tests.get(output.name, default),
                output.reference,
                output.kind,
            )
        self.outputs = {s.name: s.output_kind for s in self.series.values() if s.output_kind}
        self._pending: deque[Observed] = deque(maxlen=MAX_PENDING)
        self._every = max(1, round(1 / spec.sample_fraction))
        self._seen = 0  # requests drained (sampling counts requests, not executions)
        #: requests dropped from a full deque (the loop and the worker both observe), and how many
        #: of them the metric counts
        self._dropped = self._dropped_counted = 0
        self._drop_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()
        self._rows = 0
        self._window_started = time.monotonic()
        self._windows = 0
        self._work = threading.Lock()
        self._stop = threading.Event()
        self.report: dict[str, Any] = {
            "model": kernel.name,
            "version": kernel.version,
            "windows_evaluated": 0,
            "window": None,
            "features": [],
            "outputs": [],
            "alerts": [],
        }
        expected = spec.expected
        self.feedback_output = expected.output or next(
            (name for name, kind in self.outputs.items() if kind in ("label", "value")),
            next(iter(self.outputs), None),
        )
        metric = (
            "mae"
            if (expected.mae is not None or self.outputs.get(self.feedback_output) == "value")
            else "accuracy"
        )
        self.feedback = FeedbackStore(metric, spec.feedback_max_entries, spec.feedback_ttl_s, expected.window)
        self._accuracy_alert = False
        self._metrics(registry)
        self._thread = threading.Thread(target=self._run, name="shim-monitor", daemon=True)

    # -- metrics --------------------------------------------------------------------------------
    def _metrics(self, registry: CollectorRegistry) -> None:
        model, version = self.kernel.name, self.kernel.version
        labels = ("model", "version")
        self.m_statistic = Gauge(
            "shim_drift_statistic",
            "Drift test statistic of the last window per feature (KS D, chi-squared or PSI).",
            (*labels, "feature", "test"),
            registry=registry,
        )
        self.m_p_value = Gauge(
            "shim_drift_p_value",
            "Corrected p-value of the last window's drift test.",
            (*labels, "feature"),
            registry=registry,
        )
        self.m_alert = Gauge(
            "shim_drift_alert",
            "1 while the feature drifts for windows_in_a_row windows.",
            (*labels, "feature"),
            registry=registry,
        )
        self.m_windows = Counter(
            "shim_drift_windows", "Monitoring windows evaluated.", labels, registry=registry
        ).labels(model, version)
        self.m_drifting = Counter(
            "shim_drift_windows_drifting",
            "Windows in which at least one test drifted "
            "(corrected p-value below level); the false-alarm rate when nothing drifts.",
            labels,
            registry=registry,
        ).labels(model, version)
        self.m_rows = Counter(
            "shim_monitored_rows", "Rows observed by the monitor.", labels, registry=registry
        ).labels(model, version)
        self.m_dropped = Counter(
            "shim_monitor_dropped",
            "Observed requests dropped because the monitor fell behind.",
            labels,
            registry=registry,
        ).labels(model, version)
        self.m_classes = Counter(
            "shim_prediction_class",
            "Predicted classes of label outputs (classes of the profile; others are counted as __other__).",
            (*labels, "output", "class"),
            registry=registry,
        )
        self.m_confidence = ConfidenceHistogram(model, version, _CONFIDENCE_BUCKETS)
        registry.register(self.m_confidence)
        self.m_live = Gauge(
            "shim_live_accuracy",
            "Live accuracy (or mean absolute error, metric label) over the last feedback window.",
            (*labels, "metric"),
            registry=registry,
        )
        self.m_live_alert = Gauge(
            "shim_live_accuracy_alert",
            "1 while live accuracy is worse than monitoring.expected by more than its tolerance.",
            labels,
            registry=registry,
        ).labels(model, version)
        self.m_feedback = Counter(
            "shim_feedback", "Feedback received, by result.", (*labels, "result"), registry=registry
        )
        self._labels = (model, version)
        for series in self.series.values():
            series.statistic_gauge = self.m_statistic.labels(model, version, series.name, series.test)
            series.p_value_gauge = self.m_p_value.labels(model, version, series.name)
            series.alert_gauge = self.m_alert.labels(model, version, series.name)
            series.alert_gauge.set(0)
        self._known_classes = {
            name: set(s.reference.categories[:MAX_CLASS_LABELS])
            for name, s in self.series.items()
            if s.output_kind == "label"
        }

    # -- the request path -----------------------------------------------------------------------
    def new_id(self) -> str:
        """A request id for a request that brought none (feedback refers to it)."""
        return f"{self._id_prefix}-{next(self._ids)}"

    def observe(
        self, request_id: str | None, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]
    ) -> None:
        """One request served on its own (its arrays' first axis is its rows)."""
        self.observe_execution([request_id], inputs, outputs, None)

    def observe_execution(
        self,
        request_ids: list[Any],
        inputs: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
        rows: list[int] | None,
    ) -> None:
        """Hand one execution's arrays to the monitor thread: references only, O(1) (the batcher's
        ``Observer``). ``rows``: each request's rows in the arrays; None or one request: all."""
        pending = self._pending
        if len(pending) == MAX_PENDING:  # the append below drops the oldest: count its requests
            with self._drop_lock, contextlib.suppress(IndexError):  # IndexError: just taken
                self._dropped += len(pending[0][0])
        pending.append((request_ids, inputs, outputs, rows if len(request_ids) > 1 else None))

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.process(YIELD_S)
            except Exception:  # a defect here must never stop serving; say so and carry on
                log.exception("monitoring failed on a window; monitoring continues")

    def process(self, pause_s: float = 0.0) -> None:
        """Drain observed requests and evaluate every window that is complete; the monitor thread
        pauses ``pause_s`` after each piece of work (``YIELD_S``), a caller on the event loop not."""
        with self._work:
            pending = self._pending
            take = pending.popleft
            while pending:  # only this thread takes, so at least len(pending) are there to take
                items = [take() for _ in range(min(len(pending), DRAIN_BATCH))]
                if self._every > 1:
                    items = self._sampled(items)
                else:
                    self._seen += sum(map(len, map(_TAGS, items)))
                if items:
                    self._take_many(items)
                if pause_s:
                    time.sleep(pause_s)
                while self._rows >= self.spec.window.rows:
                    self._evaluate(self.spec.window.rows, pause_s)
            dropped = self._dropped
            if dropped != self._dropped_counted:
                self.m_dropped.inc(dropped - self._dropped_counted)
                self._dropped_counted = dropped
            seconds = self.spec.window.seconds
            if seconds and time.monotonic() - self._window_started >= seconds:
                if self._rows >= self.spec.window.min_rows:
                    self._evaluate(self._rows, pause_s)
                else:
                    self._window_started = time.monotonic()

    def _sampled(self, items: list[Observed]) -> list[Observed]:
        """Every ``1/sample_fraction``-th request, counted across executions in the order they
        ran; a request picked out of an execution of several becomes one of its own (views of
        its rows)."""
        every, kept = self._every, []
        for item in items:
            tags, inputs, outputs, rows = item
            first = self._seen
            self._seen += len(tags)
            picked = range((-(first + 1)) % every, len(tags), every)  # request number % every == 0
            if not picked:
                continue
            if rows is None:  # one request
                kept.append(item)
                continue
            ends = list(itertools.accumulate(rows))
            for i in picked:
                begin, end = ends[i] - rows[i], ends[i]
                kept.append(([tags[i]], {n: a[begin:end] for n, a in inputs.items()},
                             {n: a[begin:end] for n, a in outputs.items()}, None))
        return kept

    def _take_many(self, items: list[Observed]) -> None:
        """Executions merged, so the per-feature work is once per drain, not per execution."""
        merged = _merged(items) if len(items) > 1 else None
        if merged is not None:
            self._take_merged(items, *merged)
            return
        for group in _groups(items) if len(items) > 1 else [items]:
            merged = _merged(group) if len(group) > 1 else None
            if merged is None:
                for item in group:
                    self._take(item)
            else:
                self._take_merged(group, *merged)

    def _take_merged(
        self, items: list[Observed], inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]
    ) -> None:
        self._collect(inputs, outputs)
        name = self.feedback_output
        if name is None or name not in outputs:
            return
        ids = list(itertools.chain.from_iterable(map(_TAGS, items)))
        # a lone request's rows are its outputs' (merged arrays: ndim >= 1)
        rows = list(itertools.chain.from_iterable(
            item[3] if item[3] is not None else (len(item[2][name]),) for item in items))
        self._remember(ids, rows, self._predicted(outputs[name]))

    def _take(self, item: Observed) -> None:
        """One execution that could not be merged with its neighbours."""
        tags, inputs, outputs, rows = item
        self._collect(inputs, outputs)
        array = outputs.get(self.feedback_output) if self.feedback_output is not None else None
        if array is not None and any(tag is not None for tag in tags):
            predicted = self._predicted(np.asarray(array))
            self._remember(tags, rows if rows is not None else [predicted.shape[0]], predicted)

    def _remember(self, ids: list[Any], rows: list[int], predicted: np.ndarray) -> None:
        """Keep each request's predictions for feedback: ``rows`` says whose rows are whose."""
        if sum(rows) != predicted.shape[0]:  # outputs not batched by row: no request's rows known
            return
        ends: list[int] | range = (range(1, len(rows) + 1) if rows.count(1) == len(rows)
                                   else list(itertools.accumulate(rows)))
        if None in ids:  # requests without an id cannot be given feedback
            kept = [i for i, request_id in enumerate(ids) if request_id is not None]
            self.feedback.remember_many([(ids[i], predicted[ends[i] - rows[i] : ends[i]]) for i in kept])
            return
        self.feedback.remember_rows(ids, predicted, ends)

    def _collect(self, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> None:
        """The rows' feature and output values into the current window; class and confidence counts."""
        columns = feature_columns(self.layout, inputs)
        rows = 0
        for name, values in columns.items():
            self.series[name].chunks.append(values)
            rows = max(rows, values.shape[0])
        for name, kind in self.outputs.items():
            array = outputs.get(name)
            if array is None:
                continue
            values = output_values(kind, np.asarray(array))
            self.series[name].chunks.append(values)
            rows = max(rows, values.shape[0])
            if kind == "label":
                self._count_classes(name, values)
            elif kind == "probability":
                self.m_confidence.observe(name, values)
        self._rows += rows
        self.m_rows.inc(rows)

    def _predicted(self, array: np.ndarray) -> np.ndarray:
        """What feedback is compared with: the label or value per row (argmax of probabilities)."""
        rows = array.reshape(array.shape[0] if array.ndim else 1, -1)
        if self.outputs.get(self.feedback_output) == "probability":
            return rows.argmax(axis=1)
        return rows[:, 0].copy()  # kept by the feedback store: not a view holding the whole output

    def _count_classes(self, name: str, values: np.ndarray) -> None:
        known = self._known_classes[name]
        unique, counts = np.unique(values, return_counts=True)
        for value, count in zip(unique.tolist(), counts.tolist(), strict=True):
            key = category_key(value)
            self.m_classes.labels(*self._labels, name, key if key in known else "__other__").inc(count)

    # -- one window -----------------------------------------------------------------------------
    def _window_values(self, series: _Series, rows: int) -> np.ndarray:
        values = np.concatenate(series.chunks) if len(series.chunks) != 1 else series.chunks[0]
        series.chunks = [values[rows:]] if values.shape[0] > rows else []
        return values[:rows]

    def _evaluate(self, rows: int, pause_s: float = 0.0) -> None:
        found: dict[str, TestResult] = {}
        rates: dict[str, float] = {}
        #: KS tests of finite windows on the large-window path, by (rows, reference size): run
        #: together by ``ks_many``, one set of numpy calls for all of them
        together: dict[tuple[int, int], list[tuple[_Series, np.ndarray]]] = {}
        for series in self.series.values():
            values = self._window_values(series, rows)
            finite = values.dtype.kind in "iub"
            if values.dtype.kind == "f":
                non_finite = int(np.count_nonzero(~np.isfinite(values))) if values.size else 0
                rates[series.name] = non_finite / values.size if values.size else 0.0
                finite = non_finite == 0
                if series.kind == "categorical" and not finite:
                    values = values[np.isfinite(values)]
            elif series.kind == "continuous":
                values = values.astype(np.float64)
            if (series.test == "ks" and finite and values.ndim == 1 and values.size
                    and uses_limiting_distribution(values.size, series.reference)):
                key = (values.size, series.reference.values.size)  # type: ignore[union-attr]
                together.setdefault(key, []).append((series, values))
                continue
            found[series.name] = TESTS[series.test](values, series.reference)
            if pause_s:
                time.sleep(pause_s)
        for group in together.values():
            answers = ks_many(np.stack([values for _, values in group]), [s.reference for s, _ in group])
            found.update((series.name, result) for (series, _), result in zip(group, answers, strict=True))
        results = {name: found[name] for name in self.series}
        self._rows -= rows
        self._window_started = time.monotonic()
        self._windows += 1
        tested = [name for name, r in results.items() if r.p_value is not None]
        adjusted = dict(
            zip(
                tested,
                correct([results[n].p_value for n in tested], self.spec.correction),  # type: ignore[misc]
                strict=True,
            )
        )
        entries = []
        model, version = self._labels
        for name, result in results.items():
            series = self.series[name]
            p_value = adjusted.get(name)
            drift = (
                result.statistic > self.spec.psi_threshold
                if result.p_value is None
                else p_value is not None and p_value < self.spec.level
            )
            series.streak = series.streak + 1 if drift else 0
            was = series.alerting
            series.alerting = series.streak >= self.spec.windows_in_a_row
            series.statistic_gauge.set(result.statistic)
            if p_value is not None:
                series.p_value_gauge.set(p_value)
            series.alert_gauge.set(1 if series.alerting else 0)
            if series.alerting and not was:
                log.warning(
                    self._alert_line(series, result, p_value, rows),
                    extra={
                        "feature": name,
                        "test": result.test,
                        "statistic": round(result.statistic, 6),
                        "p_value": p_value,
                        "windows": series.streak,
                        "rows": rows,
                    },
                )
            elif was and not series.alerting:
                log.info(
                    f"{'output' if series.output_kind else 'feature'} {name!r} no longer drifts "
                    f"({_SHOWN[result.test]}={result.statistic:.3g})",
                    extra={"feature": name},
                )
            entries.append(
                {
                    "name": name,
                    "kind": series.kind,
                    "test": result.test,
                    "statistic": result.statistic,
                    "p_value": result.p_value,
                    "adjusted_p_value": p_value,
                    "drift": bool(drift),
                    "windows_in_a_row": series.streak,
                    "alert": series.alerting,
                    "rows": result.rows,
                    "non_finite_rate": rates.get(name, 0.0),
                    **(
                        {"ks_bound": series.reference.ks_bound}
                        if series.reference.type == "quantiles"
                        else {}
                    ),
                }
            )
        self.m_windows.inc()
        if any(e["drift"] for e in entries):
            self.m_drifting.inc()
        self.report = {
            "model": model,
            "version": version,
            "windows_evaluated": self._windows,
            "window": {
                "index": self._windows,
                "rows": rows,
                "closed_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "level": self.spec.level,
                "correction": self.spec.correction,
                "windows_in_a_row": self.spec.windows_in_a_row,
            },
            "features": [e for e in entries if not self.series[e["name"]].output_kind],
            "outputs": [e for e in entries if self.series[e["name"]].output_kind],
            "alerts": [e["name"] for e in entries if e["alert"]],
        }

    def _alert_line(self, series: _Series, result: TestResult, p_value: float | None, rows: int) -> str:
        what = "output" if series.output_kind else "feature"
        shown = f"{_SHOWN[result.test]}={result.statistic:.3g}"
        significance = (
            f" (p={p_value:.3g})" if p_value is not None else f" (threshold {self.spec.psi_threshold:g})"
        )
        return (
            f"{what} {series.name!r} {shown}{significance} exceeds the alert threshold for "
            f"{series.streak} window{'s' if series.streak != 1 else ''} (N={rows} rows each)"
        )

    # -- feedback -------------------------------------------------------------------------------
    def receive_feedback(self, document: Any) -> dict[str, Any]:
        """Join ``{"id": ..., "truth": ...}`` with the served prediction; raises ``FeedbackError``."""
        model, version = self._labels
        if (
            not isinstance(document, dict)
            or set(document) - {"id", "truth"}
            or "id" not in document
            or "truth" not in document
        ):
            raise FeedbackError(
                "invalid",
                'feedback must be a JSON object {"id": <request id>, "truth": '
                "<label or value, or a list with one per row>}",
            )
        request_id = document["id"]
        if not isinstance(request_id, str) or not request_id or len(request_id) > 256:
            raise FeedbackError(
                "invalid",
                "'id' must be the request id the inference response returned "
                "(a string of at most 256 characters)",
            )
        if self.feedback_output is None:
            raise FeedbackError("invalid", "this model has no monitored output to compare feedback with")
        predicted = self.feedback.take(request_id)
        if predicted is None:
            self.process()  # it may still be waiting for the monitor thread
            predicted = self.feedback.take(request_id)
        if predicted is None:
            self.m_feedback.labels(model, version, "unknown").inc()
            raise FeedbackError(
                "not_found",
                "no served prediction with this id: unknown, already answered, "
                f"older than {self.spec.feedback_ttl_s:g}s, or not observed "
                "(monitoring.sample_fraction)",
            )
        try:
            joined = self.feedback.join(predicted, document["truth"])
        except FeedbackError:
            self.feedback.remember(request_id, predicted)  # a malformed truth loses nothing
            self.m_feedback.labels(model, version, "invalid").inc()
            raise
        self.m_feedback.labels(model, version, "joined").inc()
        live, n = self.feedback.live()
        metric = self.feedback.metric
        if live is not None:
            self.m_live.labels(model, version, metric).set(live)
            self._check_accuracy(live, n)
        answer: dict[str, Any] = {
            "id": request_id,
            "rows": joined.rows,
            "metric": metric,
            "live": live,
            "n": n,
        }
        if metric == "accuracy":
            answer["correct"] = joined.correct
        return answer

    def _check_accuracy(self, live: float, n: int) -> None:
        expected = self.spec.expected
        figure = expected.accuracy if self.feedback.metric == "accuracy" else expected.mae
        if figure is None or n < min(expected.window, 100):
            return
        if self.feedback.metric == "accuracy":
            worse = live < figure - expected.tolerance
        else:
            worse = live > figure * (1 + expected.tolerance)
        if worse and not self._accuracy_alert:
            name = "accuracy" if self.feedback.metric == "accuracy" else "mean absolute error"
            log.warning(
                f"live {name} {figure:.3g} -> {live:.3g} (N={n})",
                extra={"expected": figure, "live": live, "n": n},
            )
        elif self._accuracy_alert and not worse:
            log.info(f"live {self.feedback.metric} back to {live:.3g} (N={n})")
        self._accuracy_alert = worse
        self.m_live_alert.set(1 if worse else 0)

    def accuracy_report(self) -> dict[str, Any]:
        live, n = self.feedback.live()
        expected = self.spec.expected
        return {
            "metric": self.feedback.metric,
            "output": self.feedback_output,
            "live": live,
            "n": n,
            "expected": expected.accuracy if self.feedback.metric == "accuracy" else expected.mae,
            "tolerance": expected.tolerance,
            "alert": self._accuracy_alert,
            "feedback_joined": self.feedback.joined,
            "predictions_kept": len(self.feedback),
        }

    def full_report(self) -> dict[str, Any]:
        return {**self.report, "pending_rows": self._rows, "live_accuracy": self.accuracy_report()}
