"""Metrics (scikit-learn's implementations), bootstrap confidence intervals and paired tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn import metrics as skm

Kind = Literal["score", "label", "value"]


@dataclass(frozen=True)
class Metric:
    """A metric: ``kind`` says whether it takes probabilities, hard labels or values."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool
    kind: Kind
    tasks: tuple[str, ...]


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.root_mean_squared_error(y, p))


def _poisson_deviance(y: np.ndarray, p: np.ndarray) -> float:
    # The deviance is undefined for non-positive predictions; a median baseline can predict 0.
    return float(skm.mean_poisson_deviance(y, np.clip(p, 1e-9, None)))


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]))


def _smape(y: np.ndarray, p: np.ndarray) -> float:
    denominator = np.abs(y) + np.abs(p)
    return float(np.mean(np.where(denominator > 0, 200 * np.abs(y - p) / denominator, 0.0)))


def _mape(y: np.ndarray, p: np.ndarray) -> float:
    return float(100 * skm.mean_absolute_percentage_error(y, p))


def _needs_scale(y: np.ndarray, p: np.ndarray) -> float:
    raise ValueError("MASE needs the in-sample seasonal-naive scale: use forecast_eval.mase")


_METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("roc_auc", skm.roc_auc_score, True, "score", ("classification",)),
        Metric(
            "average_precision", skm.average_precision_score, True, "score", ("classification",)
        ),
        Metric("log_loss", _log_loss, False, "score", ("classification",)),
        Metric("brier", skm.brier_score_loss, False, "score", ("classification",)),
        Metric("accuracy", skm.accuracy_score, True, "label", ("classification",)),
        Metric(
            "balanced_accuracy", skm.balanced_accuracy_score, True, "label", ("classification",)
        ),
        Metric("f1", skm.f1_score, True, "label", ("classification",)),
        Metric("precision", skm.precision_score, True, "label", ("classification",)),
        Metric("recall", skm.recall_score, True, "label", ("classification",)),
        Metric("rmse", _rmse, False, "value", ("regression", "forecasting")),
        Metric("mae", skm.mean_absolute_error, False, "value", ("regression", "forecasting")),
        Metric("r2", skm.r2_score, True, "value", ("regression",)),
        Metric("poisson_deviance", _poisson_deviance, False, "value", ("regression",)),
        Metric("mase", _needs_scale, False, "value", ("forecasting",)),
        Metric("smape", _smape, False, "value", ("forecasting",)),
        Metric("mape", _mape, False, "value", ("forecasting",)),
    ]
}


def get_metric(name: str) -> Metric:
    try:
        return _METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric '{name}'; known: {sorted(_METRICS)}") from None


def metric_names_for(task: str) -> set[str]:
    return {n for n, m in _METRICS.items() if task in m.tasks}


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a (percentile bootstrap) confidence interval."""

    value: float
    lower: float
    upper: float

    def fmt(self, digits: int = 4) -> str:
        return f"{self.value:.{digits}f} [{self.lower:.{digits}f}, {self.upper:.{digits}f}]"


def score(metric: Metric, y_true: np.ndarray, y: np.ndarray) -> float:
    """The metric on all rows; ``y`` is a score, label or value as ``metric.kind`` says."""
    with np.errstate(all="ignore"):
        return float(metric.fn(y_true, y))


def _resample_indices(n: int, samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def _valid(metric: Metric, y_true: np.ndarray) -> bool:
    # Ranking metrics are undefined on a resample that holds a single class.
    return metric.kind != "score" or len(np.unique(y_true)) > 1


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _bootstrap(
    statistic: Callable[[np.ndarray], float],
    metric: Metric,
    y_true: np.ndarray,
    samples: int,
    confidence: float,
    seed: int,
) -> Estimate:
    """``statistic`` on all rows with a percentile interval over row resamples."""
    values = np.full(samples, np.nan)
    for i, idx in enumerate(_resample_indices(len(y_true), samples, seed)):
        if _valid(metric, y_true[idx]):
            values[i] = statistic(idx)
    return Estimate(statistic(np.arange(len(y_true))), *_interval(values, confidence))


def bootstrap_ci(
    metric: Metric,
    y_true: np.ndarray,
    y: np.ndarray,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap CI of ``metric`` over resampled rows."""
    return _bootstrap(
        lambda idx: score(metric, y_true[idx], y[idx]), metric, y_true, samples, confidence, seed
    )


def paired_bootstrap_improvement(
    metric: Metric,
    y_true: np.ndarray,
    y_new: np.ndarray,
    y_ref: np.ndarray,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """How much better ``y_new`` is than ``y_ref`` on the same resampled rows.

    Oriented so that a positive value always means "new is better", whatever the metric's
    direction; the interval excluding zero is the evidence the promotion gate asks for.
    """
    sign = 1.0 if metric.greater_is_better else -1.0

    def diff(idx: np.ndarray) -> float:
        new = score(metric, y_true[idx], y_new[idx])
        return sign * (new - score(metric, y_true[idx], y_ref[idx]))

    return _bootstrap(diff, metric, y_true, samples, confidence, seed)


def relative_improvement(metric: Metric, new: float, ref: float) -> float:
    """(new - ref) / |ref|, signed so that positive means better; inf when ref is 0."""
    sign = 1.0 if metric.greater_is_better else -1.0
    if ref == 0:
        return float("inf") if sign * (new - ref) > 0 else 0.0
    return sign * (new - ref) / abs(ref)
