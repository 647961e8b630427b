"""intervals.py: influence-function intervals for large test splits.

The coverage tests simulate many data sets whose true metric value is known in closed form and
count how often the 95% interval of the fast path covers it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ml_assets.lib import intervals
from ml_assets.lib.metrics import bootstrap_ci, get_metric, paired_bootstrap_improvement

ROWS = 6_000
MAX_ROWS = 5_000  # below ROWS, so metric_ci takes the fast path
REPEATS = 1_500  # coverage standard error ~0.56 points: 93-97% is +-3.5 standard errors


def _binormal(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """30% positives; scores N(shift, 1) for positives, N(0, 1) for negatives."""
    y = (rng.random(n) < 0.3).astype(float)
    return y, rng.standard_normal(n) + shift * y


def _coverage(draw, truth: float, metric: str) -> float:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(20261201)
    hits = 0
    for _ in range(REPEATS):
        y, values = draw(rng)
        est = intervals.metric_ci(get_metric(metric), y, values, 1000, 0.95, 0, MAX_ROWS)
        hits += est.lower <= truth <= est.upper
    return hits / REPEATS


def test_auc_intervals_cover_the_true_auc_95_percent_of_the_time() -> None:
    shift = 0.8  # true AUC = Phi(shift / sqrt 2) = 0.714
    truth = stats.norm.cdf(shift / 2**0.5)
    rate = _coverage(lambda rng: _binormal(rng, ROWS, shift), truth, "roc_auc")
    assert 0.93 <= rate <= 0.97, rate


def test_rmse_intervals_cover_the_true_rmse_95_percent_of_the_time() -> None:
    # Laplace errors (heavier tails than normal) and a constant bias: RMSE = sqrt(2 b^2 + bias^2).
    scale, bias = 1.5, 0.4

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        signal = rng.normal(10, 3, ROWS)
        return signal + rng.laplace(0, scale, ROWS), signal + bias

    rate = _coverage(draw, math.sqrt(2 * scale**2 + bias**2), "rmse")
    assert 0.93 <= rate <= 0.97, rate


def test_paired_auc_intervals_cover_the_true_difference() -> None:
    # Two correlated scores of the same rows: a = z + y, b = a + noise of sd s, so the true
    # AUCs are Phi(1/sqrt 2) and Phi(1/sqrt(2 (1 + s^2))); the paired interval must cover
    # their gap.
    s = 0.7
    truth = stats.norm.cdf(1 / 2**0.5) - stats.norm.cdf(1 / math.sqrt(2 * (1 + s**2)))
    rng = np.random.default_rng(7)
    hits = 0
    repeats = 600
    for _ in range(repeats):
        y, a = _binormal(rng, ROWS, 1.0)
        b = a + rng.normal(0, s, ROWS)
        auc = get_metric("roc_auc")
        est = intervals.paired_improvement(auc, y, a, b, 1000, 0.95, 0, MAX_ROWS)
        hits += est.lower <= truth <= est.upper
    assert 0.92 <= hits / repeats <= 0.98, hits / repeats


def _data(metric: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    kind = get_metric(metric).kind
    if kind == "value":
        x = rng.normal(size=n)
        mu = np.exp(0.5 + 0.4 * x)
        return rng.poisson(mu).astype(float), mu * rng.uniform(0.8, 1.2, n)
    y, z = _binormal(rng, n, 1.0)
    p = 1 / (1 + np.exp(-(z - 1.2)))
    p = np.round(p, 2)  # ties, as a coarse model gives
    return (y, p) if kind == "score" else (y, (p >= 0.35).astype(float))


@pytest.mark.parametrize("metric", sorted(intervals.INFLUENCE))
def test_influence_standard_error_matches_the_bootstrap(metric: str) -> None:
    """On one data set, the fast interval is as wide as the percentile bootstrap (within 10%)
    and centred on the same point estimate, for every metric that has an influence function."""
    y, values = _data(metric, np.random.default_rng(3), 4_000)
    m = get_metric(metric)
    fast = intervals.influence_ci(m, y, values)
    boot = bootstrap_ci(m, y, values, samples=1500, seed=1)
    assert fast.value == pytest.approx(boot.value)
    assert (fast.upper - fast.lower) == pytest.approx(boot.upper - boot.lower, rel=0.1)


@pytest.mark.parametrize("metric", ["roc_auc", "average_precision", "log_loss", "f1", "rmse"])
def test_influence_paired_width_matches_the_paired_bootstrap(metric: str) -> None:
    rng = np.random.default_rng(5)
    y, a = _data(metric, rng, 4_000)
    _, b = _data(metric, np.random.default_rng(6), 4_000)
    b = np.where(rng.random(len(a)) < 0.5, a, b)  # correlated with a, as two models are
    m = get_metric(metric)
    fast = intervals.influence_paired(m, y, a, b)
    boot = paired_bootstrap_improvement(m, y, a, b, samples=1500, seed=1)
    assert fast.value == pytest.approx(boot.value)
    assert (fast.upper - fast.lower) == pytest.approx(boot.upper - boot.lower, rel=0.12)


def test_metric_ci_bootstraps_small_data_and_uses_influence_above_the_limit() -> None:
    m = get_metric("roc_auc")
    y, p = _binormal(np.random.default_rng(0), 3_000, 1.0)
    assert intervals.interval_method(m, 3_000, 20_000) == "bootstrap"
    assert intervals.metric_ci(m, y, p, 500, 0.95, 0, 20_000) == bootstrap_ci(m, y, p, 500, 0.95, 0)
    assert intervals.interval_method(m, 3_000, 2_000) == "influence"
    assert intervals.metric_ci(m, y, p, 500, 0.95, 0, 2_000) == intervals.influence_ci(m, y, p)


def test_influence_intervals_stay_inside_the_unit_range() -> None:
    y = np.r_[np.zeros(500), np.ones(500)]
    est = intervals.influence_ci(get_metric("roc_auc"), y, y + 1e-3)  # perfect ranking
    assert est.value == 1.0 and est.upper == 1.0 and est.lower == 1.0


def test_paired_influence_of_identical_predictions_is_exactly_zero() -> None:
    y, p = _binormal(np.random.default_rng(1), 30_000, 1.0)
    est = intervals.influence_paired(get_metric("roc_auc"), y, p, p)
    assert (est.value, est.lower, est.upper) == (0.0, 0.0, 0.0)


def test_influence_interval_costs_no_resampling_at_two_million_rows() -> None:
    """Memory stays O(n): a handful of float arrays of the test size, no resamples x rows."""
    import tracemalloc

    y, p = _binormal(np.random.default_rng(2), 2_000_000, 0.8)
    tracemalloc.start()
    intervals.influence_ci(get_metric("roc_auc"), y, p)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20 * y.nbytes  # a 1000-resample bootstrap would need ~1000 x y.nbytes
