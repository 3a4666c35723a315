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
from shim.server.monitoring.drift import correct, psi
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
