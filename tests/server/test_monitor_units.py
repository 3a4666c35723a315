"""The monitor's parts in-process: corrections and PSI against scipy, windows closed by time,
sampling, and the bounded, time-limited feedback store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from scipy import stats

from shim.contract.kernel import read_kernel
from shim.contract.profile_check import load_profile
from shim.server.monitoring.drift import (
    EXACT_KS_PAIRS,
    correct,
    ks,
    ks_many,
    ks_statistic,
    psi,
    uses_limiting_distribution,
)
from shim.server.monitoring.feedback import FeedbackError, FeedbackStore
from shim.server.monitoring.monitor import Monitor
from shim.spec.monitoring import Reference

from .monitoring_kernels import iris_copy


def test_corrections_are_scipys() -> None:
    p_values = [0.001, 0.02, 0.03, 0.2, 0.9]
    assert correct(p_values, "bonferroni") == pytest.approx([0.005, 0.1, 0.15, 1.0, 1.0])
    assert correct(p_values, "benjamini-hochberg") == pytest.approx(
        list(stats.false_discovery_control(p_values, method="bh"))
    )
    assert correct(p_values, "none") == p_values and correct([], "bonferroni") == []


def test_large_window_ks_statistic_is_ks_2samps_and_its_p_value_the_limiting_distribution() -> None:
    """Windows past EXACT_KS_PAIRS: D as ks_2samp computes it (ties, infinities, unequal sizes, a
    shift), and the p-value never below ks_2samp's asymptotic one and within 0.02 of it."""
    rng = np.random.default_rng(7)
    checked = 0
    for case in range(300):
        n, m = int(rng.integers(300, 1500)), int(rng.integers(900, 3000))
        decimals = int(rng.integers(0, 4))  # rounding makes ties, within and across the samples
        window = np.round(rng.standard_normal(n) * rng.choice([1.0, 0.7]) + rng.choice([0.0, 0.2]), decimals)
        reference_values = np.round(rng.standard_normal(m), decimals)
        if case % 10 == 0:
            window[:2] = [np.inf, -np.inf]
        reference = Reference.from_json({"type": "sample", "values": reference_values.tolist()})
        expected = stats.ks_2samp(window[np.isfinite(window)], reference_values, method="asymp")
        assert abs(ks_statistic(np.sort(window), np.sort(reference_values))
                   - stats.ks_2samp(window, reference_values).statistic) <= 1e-12
        result = ks(window, reference)
        assert result.rows == np.isfinite(window).sum()
        if window.size * m > EXACT_KS_PAIRS:
            checked += 1
            assert abs(result.statistic - expected.statistic) <= 1e-12
            assert expected.pvalue - 1e-12 <= result.p_value <= expected.pvalue + 0.02
    assert checked > 250


def test_ks_of_many_series_at_once_is_ks_of_each() -> None:
    """The monitor tests a window's continuous series together (``ks_many``): each D and p-value
    is what ``ks`` gives that series alone, with ties within and across samples, shifted and
    scaled series, and quantile-sketch references whose row count differs from their size."""
    rng = np.random.default_rng(11)
    for case in range(40):
        series, n, m = int(rng.integers(1, 20)), int(rng.integers(300, 1500)), int(rng.integers(900, 2500))
        decimals = int(rng.integers(0, 4))
        windows = np.round(rng.standard_normal((series, n)) * rng.uniform(0.5, 1.5, (series, 1))
                           + rng.uniform(-0.5, 0.5, (series, 1)), decimals)
        if case % 2:
            references = [Reference.from_json({"type": "sample",
                                               "values": np.round(rng.standard_normal(m), decimals).tolist()})
                          for _ in range(series)]
        else:
            references = [Reference.from_json({"type": "quantiles", "n": int(rng.integers(m, 10 * m)),
                                               "ks_bound": 1 / (m - 1),
                                               "values": np.quantile(rng.standard_normal(5 * m),
                                                                     np.linspace(0, 1, m)).tolist()})
                          for _ in range(series)]
        assert all(uses_limiting_distribution(n, r) for r in references)  # the only path it runs
        together = ks_many(windows, references)
        for window, reference, result in zip(windows, references, together, strict=True):
            alone = ks(window, reference)
            assert result.test == "ks" and result.rows == alone.rows == n
            assert abs(result.statistic - alone.statistic) <= 1e-12
            assert abs(result.p_value - alone.p_value) <= 1e-12


def test_small_window_ks_is_ks_2samp_itself() -> None:
    rng = np.random.default_rng(8)
    reference_values = rng.standard_normal(120)
    reference = Reference.from_json({"type": "sample", "values": reference_values.tolist()})
    window = rng.standard_normal(30) + 0.3
    expected = stats.ks_2samp(window, reference_values)
    result = ks(window, reference)
    assert (result.statistic, result.p_value) == (float(expected.statistic), float(expected.pvalue))


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = Reference.from_json({"type": "sample", "values": rng.standard_normal(5000).tolist()})
    assert psi(rng.standard_normal(2000), reference).statistic < 0.05
    assert psi(rng.standard_normal(2000) + 1.0, reference).statistic > 0.5
    counts = Reference.from_json({"type": "counts", "categories": ["a", "b"], "counts": [50, 50]})
    assert psi(np.array(["a"] * 90 + ["b"] * 10, dtype=object), counts).statistic > 0.5


def _monitor(tmp_path: Path, **monitoring: object) -> Monitor:
    kernel = read_kernel(iris_copy(tmp_path / "iris", **monitoring))
    profile, spec = load_profile(kernel)
    return Monitor(kernel, profile, spec, CollectorRegistry())  # thread not started: process() by hand


def _observe(monitor: Monitor, rows: np.ndarray, request_id: str | None = None) -> None:
    outputs = {
        "label": np.zeros(len(rows), dtype=np.int64),
        "probabilities": np.tile(np.array([[0.8, 0.1, 0.1]], dtype=np.float32), (len(rows), 1)),
    }
    monitor.observe(request_id, {"X": rows.astype(np.float32)}, outputs)


def test_a_window_closes_after_its_seconds_with_enough_rows(tmp_path: Path) -> None:
    monitor = _monitor(tmp_path, window={"rows": 1000, "seconds": 0.2, "min_rows": 5})
    _observe(monitor, np.full((3, 4), 5.0))
    time.sleep(0.25)
    monitor.process()
    assert monitor.report["windows_evaluated"] == 0  # 3 rows < min_rows: the clock restarts
    _observe(monitor, np.full((4, 4), 5.0))
    time.sleep(0.25)
    monitor.process()
    assert monitor.report["windows_evaluated"] == 1 and monitor.report["window"]["rows"] == 7


def test_sample_fraction_observes_every_kth_request(tmp_path: Path) -> None:
    monitor = _monitor(tmp_path, sample_fraction=0.25, window={"rows": 1000})
    for _ in range(40):
        _observe(monitor, np.full((1, 4), 5.0))
    monitor.process()
    assert monitor.full_report()["pending_rows"] == 10


def test_rows_split_exactly_at_window_boundaries(tmp_path: Path) -> None:
    monitor = _monitor(tmp_path, window={"rows": 30})
    for _ in range(7):
        _observe(monitor, np.random.default_rng(1).uniform(1, 7, (10, 4)))
    monitor.process()
    assert monitor.report["windows_evaluated"] == 2 and monitor.full_report()["pending_rows"] == 10
    assert all(f["rows"] == 30 for f in monitor.report["features"])


def test_feedback_store_is_bounded_in_entries_and_time() -> None:
    store = FeedbackStore("accuracy", max_entries=3, ttl_s=0.2, window=10)
    for i in range(5):
        store.remember(f"r{i}", np.array([i]))
    assert len(store) == 3 and store.take("r0") is None and store.take("r1") is None
    assert store.take("r2").tolist() == [2]
    time.sleep(0.25)
    assert store.take("r3") is None and len(store) == 0
    store.remember("x", np.array([1, 2]))
    with pytest.raises(FeedbackError) as caught:
        store.join(store.take("x"), 1)
    assert caught.value.kind == "invalid" and "one value per row" in str(caught.value)
    assert store.join(np.array([1, 2]), [1, 0]).correct == 1
    assert store.live() == (0.5, 2)


def test_regression_feedback_reports_mean_absolute_error() -> None:
    store = FeedbackStore("mae", max_entries=10, ttl_s=60, window=4)
    store.join(np.array([1.0, 2.0]), [1.5, 2.0])
    store.join(np.array([0.0, 0.0]), [1.0, -1.0])
    assert store.live() == (pytest.approx(0.625), 4)
    with pytest.raises(FeedbackError):
        store.join(np.array([1.0]), ["a"])
    with pytest.raises(FeedbackError):
        store.join(np.array([1.0]), [float("nan")])


def test_report_is_json(tmp_path: Path) -> None:
    monitor = _monitor(tmp_path, window={"rows": 10})
    _observe(monitor, np.full((10, 4), 5.0), "id-1")
    monitor.process()
    json.dumps(monitor.full_report())
    assert monitor.receive_feedback({"id": "id-1", "truth": [0] * 10})["correct"] == 10


def test_drained_requests_of_mixed_shapes_keep_every_row_and_every_prediction(tmp_path: Path) -> None:
    """One drain holding requests that merge (same dtype and row shape) and ones that cannot (a
    float64 request, a scalar-less 1-D label): every row is counted once, in order, and feedback
    finds each request's own predictions."""
    monitor = _monitor(tmp_path, window={"rows": 1000})
    rng = np.random.default_rng(3)
    sizes = [1, 3, 2, 5, 1, 4]
    for index, rows in enumerate(sizes):
        _observe(monitor, rng.uniform(1, 7, (rows, 4)), f"req-{index}")
    labels = np.array([2, 1], dtype=np.int64)
    probabilities = np.array([[0.1, 0.1, 0.8], [0.2, 0.7, 0.1]], dtype=np.float32)
    monitor.observe(
        "odd-dtype", {"X": rng.uniform(1, 7, (2, 4))}, {"label": labels, "probabilities": probabilities}
    )
    thirds = np.full((3, 3), 1 / 3, np.float32)
    monitor.observe(
        None,
        {"X": rng.uniform(1, 7, (3, 4)).astype(np.float32)},
        {"label": np.zeros(3, dtype=np.int64), "probabilities": thirds},
    )
    monitor.process()
    assert monitor.full_report()["pending_rows"] == sum(sizes) + 2 + 3
    for index, rows in enumerate(sizes):
        answer = monitor.receive_feedback({"id": f"req-{index}", "truth": [0] * rows})
        assert answer["rows"] == rows and answer["correct"] == rows
    assert monitor.receive_feedback({"id": "odd-dtype", "truth": [2, 0]})["correct"] == 1


def test_feedback_store_takes_many_at_once_within_its_bound() -> None:
    store = FeedbackStore("accuracy", max_entries=4, ttl_s=60, window=10)
    store.remember_many([(f"r{i}", np.array([i])) for i in range(6)])
    assert len(store) == 4 and store.take("r1") is None and store.take("r2").tolist() == [2]
    store.remember_many([("r3", np.array([30])), ("r9", np.array([9]))])  # r3 again: newest now
    store.remember_many([("r11", np.array([11]))])  # the oldest, r4, goes; r3 stays
    assert store.take("r4") is None and store.take("r3").tolist() == [30] and len(store) == 3


def test_confidence_histogram_exposes_what_a_prometheus_histogram_would() -> None:
    from prometheus_client import Histogram
    from prometheus_client.exposition import generate_latest

    from shim.server.monitoring.histogram import ConfidenceHistogram

    buckets = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = ConfidenceHistogram("m", "1", buckets)
    ours_registry.register(ours)
    theirs = Histogram("shim_prediction_confidence", "Top probability of probability outputs.",
                       ("model", "version", "output"), buckets=buckets, registry=theirs_registry)
    rng = np.random.default_rng(4)
    for output in ("probabilities", "other"):
        for chunk in (rng.uniform(0, 1, 500), np.array((*buckets, 0.0, 1.5)), rng.uniform(0.9, 1, 7)):
            ours.observe(output, chunk)
            for value in chunk.tolist():
                theirs.labels("m", "1", output).observe(value)

    def samples(registry: CollectorRegistry) -> dict[tuple, float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect()
            for s in family.samples
            if not s.name.endswith("_created")
        }

    mine, reference = samples(ours_registry), samples(theirs_registry)
    assert mine.keys() == reference.keys() and len(mine) == 2 * (len(buckets) + 3)
    for key, value in reference.items():
        assert mine[key] == pytest.approx(value, rel=1e-12), key
    assert b'shim_prediction_confidence_bucket{le="0.95",model="m",output="other",version="1"}' in (
        generate_latest(ours_registry)
    )


def _execution(rows: list[int], labels: np.ndarray, dtype: type = np.float32) -> tuple[dict, dict]:
    """One model execution over requests of ``rows`` rows: merged inputs and batch outputs."""
    total = sum(rows)
    probabilities = np.full((total, 3), 0.1, dtype=np.float32)
    probabilities[np.arange(total), labels] = 0.8
    inputs = {"X": np.random.default_rng(total).uniform(1, 7, (total, 4)).astype(dtype)}
    return inputs, {"label": labels, "probabilities": probabilities}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # float64: cannot merge with the others
def test_executions_of_several_requests_give_each_request_its_own_rows(tmp_path: Path, dtype: type) -> None:
    """The batcher hands whole executions (merged inputs, batch outputs, each request's rows):
    every row is counted once and feedback finds each request's own predictions, also when
    requests without an id share the execution and when one drain mixes executions and lone
    requests."""
    monitor = _monitor(tmp_path, window={"rows": 1000})
    rows = [1, 3, 2]
    labels = np.array([0, 1, 1, 1, 2, 2], dtype=np.int64)
    monitor.observe_execution(["a", "b", "c"], *_execution(rows, labels, dtype), rows)
    _observe(monitor, np.full((2, 4), 5.0), "lone")
    rows2 = [2, 1]
    monitor.observe_execution(["d", None], *_execution(rows2, np.array([2, 0, 1])), rows2)
    monitor.process()
    assert monitor.full_report()["pending_rows"] == 6 + 2 + 3
    expected = {"a": [0], "b": [1, 1, 1], "c": [2, 2], "lone": [0, 0], "d": [2, 0]}
    for request_id, truth in expected.items():
        answer = monitor.receive_feedback({"id": request_id, "truth": truth})
        assert answer["correct"] == answer["rows"] == len(truth), request_id
    with pytest.raises(FeedbackError):  # a request without an id has nothing to join with
        monitor.receive_feedback({"id": "None", "truth": [1]})


def test_sample_fraction_counts_requests_across_executions(tmp_path: Path) -> None:
    """Every 4th request, counted across executions of different sizes, and only its rows."""
    monitor = _monitor(tmp_path, sample_fraction=0.25, window={"rows": 1000})
    ids = [f"r{i}" for i in range(1, 13)]
    sizes = [1, 2, 3, 1, 1, 1, 2, 1, 1, 2, 1, 1]  # requests r1..r12, rows each
    executions = [[0, 1, 2], [3], [4, 5, 6, 7], [8, 9, 10, 11]]  # which requests ran together
    for members in executions:
        rows = [sizes[i] for i in members]
        labels = np.ones(sum(rows), dtype=np.int64)
        monitor.observe_execution([ids[i] for i in members], *_execution(rows, labels), rows)
    monitor.process()
    picked = ["r4", "r8", "r12"]
    assert monitor.full_report()["pending_rows"] == sum(sizes[int(i[1:]) - 1] for i in picked)
    for request_id in picked:
        assert monitor.receive_feedback({"id": request_id, "truth": [1]})["correct"] == 1
    with pytest.raises(FeedbackError):
        monitor.receive_feedback({"id": "r3", "truth": [1, 1, 1]})
