"""The statistical tests of one window: scipy's tests and distributions (no hand-written p-values).

- Continuous features and outputs: the two-sample Kolmogorov-Smirnov test of the window against
  the profile's reference. Small windows (window x reference at most ``EXACT_KS_PAIRS`` value
  pairs) are ``scipy.stats.ks_2samp`` itself, exact p-value included. Larger ones take D as
  ks_2samp computes it (``ks_statistics``: one merge of window and reference, equal to scipy's
  D to rounding; the reference is kept sorted; a window's series together, ``ks_many``) and the
  p-value from the limiting Kolmogorov distribution of sqrt(n*N/(n+N)) * D
  (``scipy.stats.kstwobign``, Smirnov's asymptotic formula, whose survival function
  ``scipy.special.kolmogorov`` is called directly). Where it is used it is
  within 0.02 (effective size 200; 0.01 at 700) of the finite-size ``kstwo`` that ks_2samp's
  ``asymp`` method uses and never below it (a slightly larger p: no extra false alarms), at a
  small fraction of the cost: ks_2samp's argument handling and ``kstwo.sf`` take ~1.5 ms a call,
  one call per feature per window, on a thread that shares the GIL with the server. With a
  quantile sketch of k points, D is against the sketch and differs from the full-sample D by at
  most the sketch's ``ks_bound`` = 1/(k-1) (the sketch's step CDF is within 1/(k-1) of the
  reference's empirical CDF everywhere); N is the reference's row count.
- Categorical features and label outputs: the chi-squared test of homogeneity of the window's and
  the reference's category counts (``scipy.stats.chi2_contingency``), categories seen in either.
- PSI (only when the contract asks): the population stability index over reference-decile bins,
  as the symmetric relative entropy ``scipy.special.rel_entr``; no p-value, it alerts above
  ``psi_threshold``.

``correct`` applies the multiple-testing correction across the tests of one window:
Bonferroni (family-wise error rate) or Benjamini-Hochberg (``scipy.stats.false_discovery_control``;
under the global null, when nothing drifts, it also bounds the chance of any alert by ``level``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from shim.spec.monitoring import Reference, category_counts

#: Above this many value pairs (window x reference) ks_2samp's exact p-value is too slow for a
#: background thread that shares the GIL with the server; the asymptotic one is used instead.
EXACT_KS_PAIRS = 250_000
_EPSILON = 1e-4


@dataclass(frozen=True)
class TestResult:
    test: str
    statistic: float
    p_value: float | None  # None for PSI
    rows: int


def ks(window: np.ndarray, reference: Reference) -> TestResult:
    values = window[np.isfinite(window)]
    if values.size == 0:
        return TestResult("ks", 0.0, 1.0, 0)
    if not uses_limiting_distribution(values.size, reference):
        result = stats.ks_2samp(values, reference.values, method="auto")
        return TestResult("ks", float(result.statistic), float(result.pvalue), int(values.size))
    return ks_many(values[np.newaxis, :], [reference])[0]


def uses_limiting_distribution(rows: int, reference: Reference) -> bool:
    """Whether ``ks`` takes the large-window path (D by merge, p from ``kstwobign``) for a window
    of ``rows`` finite values: the only path ``ks_many`` runs for many series at once."""
    assert reference.values is not None
    return not (reference.type == "sample" and rows * reference.values.size <= EXACT_KS_PAIRS)


def ks_many(windows: np.ndarray, references: list[Reference]) -> list[TestResult]:
    """The large-window path of ``ks`` for several series of one window at once: ``windows`` is
    (series, rows), every value finite, every reference of the same size and on that path
    (``uses_limiting_distribution``). The same D and p-value as ``ks`` gives each series alone
    (tests/server/test_monitor_units.py), in a dozen numpy
    calls for all of them instead of a dozen per series: with 16 features and an output, the
    Python around each call cost more than its arithmetic, on a thread sharing the GIL."""
    n = windows.shape[1]
    stacked = np.stack([r.values for r in references])  # type: ignore[misc]
    statistics = ks_statistics(windows, stacked)
    totals = np.array([r.n for r in references], dtype=np.float64)
    effective = n * totals / (n + totals)
    p_values = np.clip(special.kolmogorov(statistics * np.sqrt(effective)), 0.0, 1.0)
    return [TestResult("ks", float(d), float(p), n) for d, p in zip(statistics.tolist(), p_values.tolist(),
                                                                      strict=True)]


def ks_statistics(windows: np.ndarray, references: np.ndarray) -> np.ndarray:
    """ks_2samp's two-sided statistic D, row by row: ``windows`` (k, n) against ``references``
    (k, m), in any order. The largest gap between the two empirical CDFs over every point of
    either sample, ties counted with ``side="right"`` as ks_2samp counts them, so it equals
    ``stats.ks_2samp(window, reference).statistic`` to rounding (tests/server/test_monitor_units.py).

    One stable merge of both samples instead of ks_2samp's two ``searchsorted`` over all n + m
    points: walking the merged order, the CDF gap times n*m moves by +m at a window value and by -n
    at a reference value (integers, so no rounding accumulates); it is read only at the last of
    each run of equal values, where both CDFs have counted every tie (43 against 112 us for one
    row of 1,000 + 2,000 values). The windows are sorted first, so the stable sort (timsort) finds
    two sorted runs per row, window and reference (kept sorted), and only merges them: 440 against
    1,300 us for 16 rows.
    """
    n, m = windows.shape[1], references.shape[1]
    values = np.concatenate([np.sort(windows.astype(np.float64, copy=False), axis=1), references], axis=1)
    order = np.argsort(values, axis=1, kind="stable")
    gap = np.cumsum(np.where(order < n, m, -n), axis=1)
    merged = np.take_along_axis(values, order, axis=1)
    last = np.empty(merged.shape, dtype=bool)
    np.not_equal(merged[:, 1:], merged[:, :-1], out=last[:, :-1])
    last[:, -1] = True
    return np.abs(np.where(last, gap, 0)).max(axis=1) / (n * m)


def ks_statistic(window: np.ndarray, reference: np.ndarray) -> float:
    """``ks_statistics`` of one window against one reference."""
    return float(ks_statistics(window[np.newaxis, :], reference[np.newaxis, :])[0])


def chi2(window: np.ndarray, reference: Reference) -> TestResult:
    counts = category_counts(window)
    assert reference.counts is not None
    categories = list(reference.categories) + sorted(set(counts) - set(reference.categories))
    observed = np.array([counts.get(c, 0) for c in categories], dtype=np.float64)
    expected = np.concatenate(
        [reference.counts.astype(np.float64), np.zeros(len(categories) - len(reference.categories))]
    )
    keep = (observed + expected) > 0
    table = np.vstack([observed[keep], expected[keep]])
    rows = int(observed.sum())
    if table.shape[1] < 2 or rows == 0:
        return TestResult("chi2", 0.0, 1.0, rows)
    result = stats.chi2_contingency(table)
    return TestResult("chi2", float(result.statistic), float(result.pvalue), rows)


def psi(window: np.ndarray, reference: Reference) -> TestResult:
    if reference.type == "counts":
        counts = category_counts(window)
        assert reference.counts is not None
        actual = np.array([counts.get(c, 0) for c in reference.categories], dtype=np.float64)
        expected = reference.counts.astype(np.float64)
    else:
        values = window[np.isfinite(window)]
        assert reference.values is not None
        edges = np.unique(np.quantile(reference.values, np.linspace(0.1, 0.9, 9)))
        actual = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        expected = np.bincount(
            np.searchsorted(edges, reference.values, side="right"), minlength=len(edges) + 1
        )
        if reference.type == "quantiles":  # quantile points are equally spaced in probability
            expected = expected.astype(np.float64)
    rows = int(actual.sum())
    if rows == 0:
        return TestResult("psi", 0.0, None, 0)
    a = np.maximum(actual / actual.sum(), _EPSILON)
    e = np.maximum(expected / max(expected.sum(), 1.0), _EPSILON)
    value = float(np.sum(special.rel_entr(a, e) + special.rel_entr(e, a)))
    return TestResult("psi", value, None, rows)


TESTS = {"ks": ks, "chi2": chi2, "psi": psi}


def correct(p_values: list[float], method: str) -> list[float]:
    """The window's p-values after the multiple-testing correction (same order)."""
    if not p_values:
        return []
    values = np.asarray(p_values, dtype=np.float64)
    if method == "bonferroni":
        adjusted = np.minimum(1.0, values * len(values))
    elif method == "benjamini-hochberg":
        adjusted = stats.false_discovery_control(values, method="bh")
    else:
        adjusted = values
    return [float(v) for v in adjusted]
