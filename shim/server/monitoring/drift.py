"""The statistical tests of one window, all from ``scipy.stats`` (never hand-written statistics).

- Continuous features and outputs: the two-sample Kolmogorov-Smirnov test
  (``scipy.stats.ks_2samp``) of the window against the profile's reference. With the full
  reference sample the statistic is exactly scipy's. With a quantile sketch of k points, D is
  ks_2samp's statistic of the window against the sketch, which differs from the full-sample D by
  at most the sketch's ``ks_bound`` = 1/(k-1) (the sketch's step CDF is within 1/(k-1) of the
  reference's empirical CDF everywhere); its p-value is the asymptotic Kolmogorov distribution
  ``scipy.stats.kstwo`` at the effective size n*N/(n+N), as ks_2samp's ``asymp`` method computes.
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
    assert reference.values is not None
    pairs = values.size * reference.values.size
    method = "auto" if pairs <= EXACT_KS_PAIRS else "asymp"
    result = stats.ks_2samp(values, reference.values, method=method)
    if reference.type == "sample":
        return TestResult("ks", float(result.statistic), float(result.pvalue), int(values.size))
    n, m = values.size, reference.n
    effective = max(1, round(n * m / (n + m)))
    p_value = float(stats.kstwo.sf(result.statistic, effective))
    return TestResult("ks", float(result.statistic), min(1.0, max(0.0, p_value)), int(values.size))


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
