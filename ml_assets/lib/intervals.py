"""Confidence intervals that stay cheap at millions of rows.

Up to ``bootstrap_max_rows`` test rows, every interval is the percentile bootstrap of
``metrics`` (rows resampled). Above it, a bootstrap costs resamples x rows of work and memory,
and the metric's sampling distribution is normal to a very good approximation, so the interval
is the normal one with the standard error of the metric's influence function: per-row
contributions ``phi`` whose mean is the metric's first-order deviation from its true value, so
that ``se = std(phi) / sqrt(n)``. For ROC AUC that is DeLong's variance; for means of per-row
losses it is the usual standard error; ratios (precision, recall, F1) and square roots (RMSE)
get the delta method. A paired comparison uses the difference of the two models' contributions
on the same rows, which keeps their correlation, as the paired bootstrap does. One sort per
model, no resampling: O(n log n).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy import stats

from ml_assets.lib.metrics import (
    Estimate,
    Metric,
    bootstrap_ci,
    paired_bootstrap_improvement,
    score,
)

Method = Literal["bootstrap", "influence"]
# Metrics bounded to [0, 1]: a normal interval is clipped to that range.
_UNIT = {"roc_auc", "average_precision", "brier", "accuracy", "balanced_accuracy", "f1"}
_UNIT |= {"precision", "recall"}


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Influence of mean(a) / mean(b) (delta method); zero when mean(b) is zero."""
    denominator = b.mean()
    if denominator == 0:
        return np.zeros_like(a, dtype=float)
    return (a - (a.mean() / denominator) * b) / denominator


def _auc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """DeLong's placement values: a positive's share of negatives scored below it (ties half),
    a negative's share of positives scored above it, centred and divided by the class share."""
    pos = y == 1
    m, k = int(pos.sum()), int((~pos).sum())
    if m == 0 or k == 0:
        return np.zeros(len(y))
    ranks = stats.rankdata(p)
    within = np.empty(len(y))
    within[pos] = stats.rankdata(p[pos])
    within[~pos] = stats.rankdata(p[~pos])
    below = ranks - within  # other-class rows scored below (ties half)
    auc = below[pos].sum() / (m * k)
    phi = np.empty(len(y))
    phi[pos] = (below[pos] / k - auc) * len(y) / m
    phi[~pos] = ((m - below[~pos]) / m - auc) * len(y) / k
    return phi


def _average_precision(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Influence of AP = E[G(S)/H(S) | Y=1], with G(t) = P(S >= t, Y=1), H(t) = P(S >= t)
    (scikit-learn's step definition, ties included): for a row (s0, y0),
    (y0 G(s0)/H(s0) - N + y0 A(s0) - B(s0) - AP (y0 - pi)) / pi, where N = pi AP,
    A(s0) = E[Y 1(S <= s0) / H(S)] and B(s0) = E[Y G(S) 1(S <= s0) / H(S)^2]."""
    n, pi = len(y), y.mean()
    if pi == 0:
        return np.zeros(n)
    order = np.argsort(p, kind="stable")
    sorted_p, sorted_y = p[order], y[order]
    # Rows with score >= s: everything from the first row equal to s in ascending order.
    first = np.searchsorted(sorted_p, p, side="left")
    last = np.searchsorted(sorted_p, p, side="right")  # rows with score <= s
    tail_pos = np.concatenate([np.cumsum(sorted_y[::-1])[::-1], [0.0]])
    g = tail_pos[first] / n
    h = (n - first) / n
    ratio = g / h
    ap = float((y * ratio).sum() / y.sum())
    # Cumulative sums over positives in ascending score order, read at each row's "<= s0".
    sorted_h = h[order]
    sorted_g = g[order]
    cum_a = np.concatenate([[0.0], np.cumsum(sorted_y / sorted_h)]) / n
    cum_b = np.concatenate([[0.0], np.cumsum(sorted_y * sorted_g / sorted_h**2)]) / n
    a, b = cum_a[last], cum_b[last]
    return (y * ratio - pi * ap + y * a - b - ap * (y - pi)) / pi


def _log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-15, 1 - 1e-15)
    loss = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    return loss - loss.mean()


def _centred(values: np.ndarray) -> np.ndarray:
    return values - values.mean()


def _rmse(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    squared = (y - p) ** 2
    rmse = np.sqrt(squared.mean())
    return (squared - squared.mean()) / (2 * rmse) if rmse > 0 else np.zeros(len(y))


def _r2(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    # r2 = 1 - mean(e^2) / mean(d^2); the estimated mean in d adds nothing at first order.
    return -_ratio((y - p) ** 2, (y - y.mean()) ** 2)


def _poisson_deviance(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    mu = np.clip(p, 1e-9, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        ylogy = np.where(y > 0, y * np.log(y / mu), 0.0)
    return _centred(2 * (ylogy - (y - mu)))


def _balanced_accuracy(y: np.ndarray, label: np.ndarray) -> np.ndarray:
    return 0.5 * (_ratio(y * label, y) + _ratio((1 - y) * (1 - label), 1 - y))


# Per-row influence of each metric, given the truth and the model's scores, labels or values.
INFLUENCE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "roc_auc": _auc,
    "average_precision": _average_precision,
    "log_loss": _log_loss,
    "brier": lambda y, p: _centred((y - p) ** 2),
    "accuracy": lambda y, label: _centred((y == label).astype(float)),
    "balanced_accuracy": _balanced_accuracy,
    "precision": lambda y, label: _ratio(y * label, label),
    "recall": lambda y, label: _ratio(y * label, y),
    "f1": lambda y, label: _ratio(2 * y * label, y + label),
    "rmse": _rmse,
    "mae": lambda y, p: _centred(np.abs(y - p)),
    "r2": _r2,
    "poisson_deviance": _poisson_deviance,
}


def influence(metric: Metric, y_true: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row influence of ``metric`` (mean zero): its mean's standard error is the metric's."""
    return INFLUENCE[metric.name](y_true.astype(float), y.astype(float))


def _normal(point: float, phi: np.ndarray, confidence: float) -> tuple[float, float]:
    se = float(phi.std() / np.sqrt(len(phi)))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return point - z * se, point + z * se


def influence_ci(
    metric: Metric, y_true: np.ndarray, y: np.ndarray, confidence: float = 0.95
) -> Estimate:
    """Normal interval with the influence-function standard error (for large n)."""
    point = score(metric, y_true, y)
    lower, upper = _normal(point, influence(metric, y_true, y), confidence)
    if metric.name in _UNIT:
        lower, upper = max(lower, 0.0), min(upper, 1.0)
    return Estimate(point, lower, upper)


def influence_paired(
    metric: Metric,
    y_true: np.ndarray,
    y_new: np.ndarray,
    y_ref: np.ndarray,
    confidence: float = 0.95,
) -> Estimate:
    """Improvement of ``y_new`` over ``y_ref`` (positive = better) with a paired normal CI."""
    sign = 1.0 if metric.greater_is_better else -1.0
    point = sign * (score(metric, y_true, y_new) - score(metric, y_true, y_ref))
    phi = sign * (influence(metric, y_true, y_new) - influence(metric, y_true, y_ref))
    return Estimate(point, *_normal(point, phi, confidence))


def interval_method(metric: Metric, rows: int, bootstrap_max_rows: int) -> Method:
    """Bootstrap up to ``bootstrap_max_rows`` rows (or for a metric with no influence
    function), influence-function normal intervals above."""
    return "influence" if rows > bootstrap_max_rows and metric.name in INFLUENCE else "bootstrap"


def _method(metric: Metric, y: np.ndarray, bootstrap_max_rows: int) -> Method:
    """``interval_method`` for these predictions: class-probability matrices (K > 2 classes)
    and class labels beyond 0/1 have no influence function here and are bootstrapped."""
    several = y.ndim == 2 or (metric.kind == "label" and len(y) and float(np.max(y)) > 1)
    return "bootstrap" if several else interval_method(metric, len(y), bootstrap_max_rows)


def metric_ci(
    metric: Metric,
    y_true: np.ndarray,
    y: np.ndarray,
    samples: int,
    confidence: float,
    seed: int,
    bootstrap_max_rows: int,
) -> Estimate:
    """``metric`` with its CI by the method ``interval_method`` picks for this many rows."""
    if _method(metric, y, bootstrap_max_rows) == "influence":
        return influence_ci(metric, y_true, y, confidence)
    sample = _subsample(len(y_true), bootstrap_max_rows, seed)
    if sample is None:
        return bootstrap_ci(metric, y_true, y, samples, confidence, seed)
    small = bootstrap_ci(metric, y_true[sample], y[sample], samples, confidence, seed)
    return _widened(score(metric, y_true, y), small, len(sample), len(y_true))


def _subsample(rows: int, limit: int, seed: int) -> np.ndarray | None:
    """A seeded sample of ``limit`` positions when a metric without an influence function
    has more rows than that (its bootstrap costs resamples x rows); None when they fit."""
    if rows <= max(limit, 1000):
        return None
    return np.sort(np.random.default_rng([seed, 7]).choice(rows, max(limit, 1000), replace=False))


def _widened(point: float, small: Estimate, m: int, n: int) -> Estimate:
    """An interval from a bootstrap of m of the n rows, its half-widths scaled by sqrt(m/n)
    (the root-n rate) around the point estimate on all n rows."""
    shrink = np.sqrt(m / n)
    return Estimate(
        point,
        point - (small.value - small.lower) * shrink,
        point + (small.upper - small.value) * shrink,
    )


def paired_improvement(
    metric: Metric,
    y_true: np.ndarray,
    y_new: np.ndarray,
    y_ref: np.ndarray,
    samples: int,
    confidence: float,
    seed: int,
    bootstrap_max_rows: int,
) -> Estimate:
    """Paired improvement of ``y_new`` over ``y_ref``, by the same choice of method."""
    if _method(metric, y_new, bootstrap_max_rows) == "influence":
        return influence_paired(metric, y_true, y_new, y_ref, confidence)
    sample = _subsample(len(y_true), bootstrap_max_rows, seed)
    if sample is None:
        return paired_bootstrap_improvement(metric, y_true, y_new, y_ref, samples, confidence, seed)
    small = paired_bootstrap_improvement(
        metric, y_true[sample], y_new[sample], y_ref[sample], samples, confidence, seed
    )
    sign = 1.0 if metric.greater_is_better else -1.0
    point = sign * (score(metric, y_true, y_new) - score(metric, y_true, y_ref))
    return _widened(point, small, len(sample), len(y_true))


def describe(method: Method, samples: int, bootstrap_max_rows: int) -> str:
    """How the report's intervals were computed, in words."""
    if method == "bootstrap":
        return f"percentile bootstrap intervals ({samples} resamples of the test rows)"
    return (
        f"normal intervals with influence-function standard errors (DeLong for ROC AUC, the "
        f"delta method for ratios and RMSE): more than {bootstrap_max_rows:,} test rows "
        "(evaluation.bootstrap_max_rows), where a bootstrap would cost resamples x rows of "
        "work for an interval this one matches"
    )
