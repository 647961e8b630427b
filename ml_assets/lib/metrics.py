"""Metrics (scikit-learn's implementations, or numpy ones checked against them where a
bootstrap calls them thousands of times), bootstrap confidence intervals and paired tests
(vectorised over resamples for the metrics that allow it)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from ml_assets.lib.class_metrics import (
    accuracy,
    balanced_accuracy,
    binary_auc,
    macro_f1,
    weighted_f1,
)

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


# Classification scores are P(positive) per row for two classes, or for K > 2 classes a
# (rows, K) matrix of class probabilities, columns in class order and the truth a class index
# 0..K-1; labels are class indices either way. Every classification metric takes both.


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    if p.ndim == 1:
        return float(skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]))
    # K classes (rows of probabilities summing to one): the mean negative log probability of
    # the true class, as scikit-learn's log_loss, without its per-call validation (a bootstrap
    # calls this thousands of times on a few hundred rows).
    true = p[np.arange(len(y)), np.asarray(y, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(true, 1e-15, 1.0))))


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC; for K classes the macro average of one-vs-rest AUCs."""
    if p.ndim == 1:
        return float(skm.roc_auc_score(y, p))
    # Over the classes present in y (a segment or a resample may lack one): the mean of
    # each class's AUC against the rest, as sklearn's macro one-vs-rest on all K classes.
    present = np.unique(np.asarray(y, dtype=int))
    if len(present) < 2:
        raise ValueError("ROC AUC needs rows of at least two classes")
    yi = np.asarray(y, dtype=int)
    return float(np.mean([binary_auc(yi == k, p[:, k]) for k in present]))


def _one_hot(y: np.ndarray, k: int) -> np.ndarray:
    return (np.asarray(y, dtype=int)[:, None] == np.arange(k)[None, :]).astype(float)


def _average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision; for K classes the macro average over one-vs-rest."""
    if p.ndim == 1:
        return float(skm.average_precision_score(y, p))
    return float(skm.average_precision_score(_one_hot(y, p.shape[1]), p, average="macro"))


def _brier(y: np.ndarray, p: np.ndarray) -> float:
    """Brier score; for K classes the mean over rows of the squared error summed over classes."""
    if p.ndim == 1:
        return float(skm.brier_score_loss(y, p))
    return float(np.mean(np.sum((p - _one_hot(y, p.shape[1])) ** 2, axis=1)))


def _top_k_accuracy(k: int) -> Callable[..., float]:
    """Share of rows whose true class is among the k most probable (1.0 for two classes
    and k >= 2)."""

    def fn(y: np.ndarray, p: np.ndarray) -> float:
        if p.ndim == 1:
            return 1.0 if k >= 2 else float(np.mean((p >= 0.5) == (y > 0.5)))
        # The k most probable classes (equal probabilities: the higher class index first,
        # as scikit-learn's top_k_accuracy_score orders them).
        top = np.argsort(p, axis=1, kind="mergesort")[:, ::-1][:, : min(k, p.shape[1])]
        return float(np.mean(np.any(top == np.asarray(y, dtype=np.int64)[:, None], axis=1)))

    return fn


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
        Metric("roc_auc", _roc_auc, True, "score", ("classification",)),
        Metric("average_precision", _average_precision, True, "score", ("classification",)),
        Metric("log_loss", _log_loss, False, "score", ("classification",)),
        Metric("brier", _brier, False, "score", ("classification",)),
        Metric("macro_f1", macro_f1, True, "label", ("classification",)),
        Metric("weighted_f1", weighted_f1, True, "label", ("classification",)),
        Metric("accuracy", accuracy, True, "label", ("classification",)),
        Metric("balanced_accuracy", balanced_accuracy, True, "label", ("classification",)),
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


def _precision_at(count: int | None, percent: int | None) -> Callable[..., float]:
    """Precision among the ``count`` (or ``percent`` % of the) rows scored highest: what a
    team that can act on k cases finds among them. Rows tied at the cut share the remaining
    places: they count with their group's positive share, whatever the row order."""

    def fn(y: np.ndarray, p: np.ndarray) -> float:
        n = len(y)
        if n == 0:
            return float("nan")
        top = count if count is not None else -(-(percent or 0) * n // 100)  # ceil, exact
        k = max(1, min(int(top), n))
        scores, truth = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
        cut = np.partition(scores, n - k)[n - k]  # the k-th highest score
        above, tied = scores > cut, scores == cut
        places = k - int(above.sum())
        return float((truth[above].sum() + places * truth[tied].mean()) / k)

    return fn


def _recall_at_precision(minimum: float) -> Callable[..., float]:
    """The largest recall of any threshold whose precision is at least ``minimum`` (0 when
    none reaches it)."""

    def fn(y: np.ndarray, p: np.ndarray) -> float:
        precision, recall, _ = skm.precision_recall_curve(y, p)
        reached = recall[precision >= minimum]
        return float(reached.max()) if len(reached) else 0.0

    return fn


# Metrics with their parameter in the name: precision_at_100 (the 100 highest scores),
# precision_at_5pct (the highest 5%), recall_at_precision_90 (recall at precision >= 0.90).
_PARAMETRIC = re.compile(
    r"^(?:precision_at_(?P<k>[1-9]\d*)(?P<pct>pct)?|recall_at_precision_(?P<p>[1-9]\d?)"
    r"|top_(?P<top>[1-9]\d?)_accuracy)$"
)
PARAMETRIC_EXAMPLES = (
    "precision_at_100",
    "precision_at_5pct",
    "recall_at_precision_90",
    "top_3_accuracy",
)


def _parametric(name: str) -> Metric | None:
    match = _PARAMETRIC.match(name)
    if match is None:
        return None
    if match["top"]:
        fn = _top_k_accuracy(int(match["top"]))
    elif match["p"]:
        fn = _recall_at_precision(int(match["p"]) / 100)
    elif match["pct"]:
        if int(match["k"]) > 100:
            return None
        fn = _precision_at(None, int(match["k"]))
    else:
        fn = _precision_at(int(match["k"]), None)
    return Metric(name, fn, True, "score", ("classification",))


def get_metric(name: str) -> Metric:
    found = _METRICS.get(name) or _parametric(name)
    if found is None:
        raise KeyError(
            f"unknown metric '{name}'; known: {sorted(_METRICS)}, and with a parameter "
            f"{', '.join(PARAMETRIC_EXAMPLES)}"
        )
    return found


def metric_names_for(task: str) -> set[str]:
    """The metrics of ``task`` with fixed names (parametric ones: ``is_metric_for``)."""
    return {n for n, m in _METRICS.items() if task in m.tasks}


def is_metric_for(name: str, task: str) -> bool:
    try:
        return task in get_metric(name).tasks
    except KeyError:
        return False


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


def _one_number_per_row(metric: Metric, y_true: np.ndarray, y: np.ndarray) -> bool:
    """Not K > 2 classes: scores are one number per row and labels 0 or 1 (what the
    vectorised bootstrap paths assume)."""
    if y.ndim != 1:
        return False
    if metric.kind != "label" or len(y_true) == 0:
        return True
    return float(max(np.max(y_true), np.max(y))) <= 1


def _valid(metric: Metric, y_true: np.ndarray) -> bool:
    # Ranking metrics are undefined on a resample that holds a single class.
    return metric.kind != "score" or len(np.unique(y_true)) > 1


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _auc_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """ROC AUC of every row of the (resamples x rows) matrices ``y`` and ``p``: the
    Mann-Whitney statistic on average ranks, which is the area under the ROC curve with ties
    counted as half; NaN where a row holds a single class."""
    ranks = stats.rankdata(p, axis=1)
    positives = y.sum(axis=1)
    negatives = y.shape[1] - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * y).sum(axis=1) - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, np.nan)


def _log_loss_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return -(y * np.log(q) + (1 - y) * np.log(1 - q)).mean(axis=1)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where den is 0 (scikit-learn's zero_division default)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _confusion(y: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, ...]:
    """True/false positives and negatives of every row of the (resamples x rows) matrices."""
    tp = (y * label).sum(axis=1)
    fp = label.sum(axis=1) - tp
    fn = y.sum(axis=1) - tp
    return tp, fp, fn, y.shape[1] - tp - fp - fn


def _balanced_accuracy_rows(y: np.ndarray, label: np.ndarray) -> np.ndarray:
    tp, fp, fn, tn = _confusion(y, label)
    with np.errstate(divide="ignore", invalid="ignore"):
        recalls = np.stack([tp / (tp + fn), tn / (tn + fp)])
    # scikit-learn averages the recalls of the classes present in the truth.
    return np.nanmean(recalls, axis=0)


def _label_rows(
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda y, label: fn(*_confusion(y, label))


# Metrics whose value on many resamples at once is a few array operations. The point estimate
# always comes from scikit-learn (``score``); these only fill the bootstrap distribution, where
# calling scikit-learn once per resample spends most of its time validating its inputs.
_ROWS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "roc_auc": _auc_rows,
    "log_loss": _log_loss_rows,
    "brier": lambda y, p: ((y - p) ** 2).mean(axis=1),
    "rmse": lambda y, p: np.sqrt(((y - p) ** 2).mean(axis=1)),
    "mae": lambda y, p: np.abs(y - p).mean(axis=1),
    "accuracy": _label_rows(lambda tp, fp, fn, tn: (tp + tn) / (tp + fp + fn + tn)),
    "precision": _label_rows(lambda tp, fp, fn, tn: _safe_ratio(tp, tp + fp)),
    "recall": _label_rows(lambda tp, fp, fn, tn: _safe_ratio(tp, tp + fn)),
    "f1": _label_rows(lambda tp, fp, fn, tn: _safe_ratio(2 * tp, 2 * tp + fp + fn)),
    "balanced_accuracy": _balanced_accuracy_rows,
}
_CHUNK_CELLS = 2_000_000  # resample rows are processed in blocks of about this many cells


def _resampled(
    metric: Metric, y_true: np.ndarray, y: np.ndarray, indices: np.ndarray
) -> np.ndarray:
    """``metric`` on every resample (a row of ``indices``); NaN where it is undefined."""
    rows = _ROWS.get(metric.name)
    if rows is None or not _one_number_per_row(metric, y_true, y):
        out = np.full(len(indices), np.nan)
        for i, idx in enumerate(indices):
            if _valid(metric, y_true[idx]):
                try:
                    out[i] = score(metric, y_true[idx], y[idx])
                except ValueError:  # a resample without one of K classes: undefined
                    continue
        return out
    step = max(1, _CHUNK_CELLS // max(indices.shape[1], 1))
    truth, values = y_true.astype(float), y.astype(float)
    out = []
    for block in np.split(indices, range(step, len(indices), step)):
        t = truth[block]
        result = rows(t, values[block])
        if metric.kind == "score":  # the same rule as _valid: one class, no value
            result = np.where(t.min(axis=1) < t.max(axis=1), result, np.nan)
        out.append(result)
    return np.concatenate(out)


def bootstrap_ci(
    metric: Metric,
    y_true: np.ndarray,
    y: np.ndarray,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap CI of ``metric`` over resampled rows."""
    values = _resampled(metric, y_true, y, _resample_indices(len(y_true), samples, seed))
    return Estimate(score(metric, y_true, y), *_interval(values, confidence))


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
    indices = _resample_indices(len(y_true), samples, seed)
    diffs = sign * (
        _resampled(metric, y_true, y_new, indices) - _resampled(metric, y_true, y_ref, indices)
    )
    point = sign * (score(metric, y_true, y_new) - score(metric, y_true, y_ref))
    return Estimate(point, *_interval(diffs, confidence))


def relative_improvement(metric: Metric, new: float, ref: float) -> float:
    """(new - ref) / |ref|, signed so that positive means better; inf when ref is 0."""
    sign = 1.0 if metric.greater_is_better else -1.0
    if ref == 0:
        return float("inf") if sign * (new - ref) > 0 else 0.0
    return sign * (new - ref) / abs(ref)
