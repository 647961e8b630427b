"""Fairness across groups of people for a classifier on the test split (``fairness`` in the
spec).

For each group (each value of each of the spec's fairness columns) at the model's decision
threshold: the selection rate (share labelled positive), the true positive rate and the false
positive rate, each with a percentile bootstrap CI over test rows; and per column the
demographic-parity difference (largest minus smallest selection rate) and the equalized-odds
difference (the larger of the TPR and FPR ranges), with CIs from the same resamples. A rate
is undefined (NaN) in a group without the rows it needs (no positives for TPR), and a
difference only counts the groups where its rates are defined.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl

RATES = ("selection_rate", "tpr", "fpr")
DISPARITIES = {
    "demographic_parity_difference": ("selection_rate",),
    "equalized_odds_difference": ("tpr", "fpr"),
}
_CHUNK_CELLS = 2_000_000


@dataclass(frozen=True)
class Fairness:
    """Per-group rates and per-column disparities, with their intervals and the bound."""

    groups: pl.DataFrame  # column, group, rows, positives, <rate>, <rate>_lower, _upper
    disparities: pl.DataFrame  # column, disparity, value, lower, upper, bound, within
    bound: float | None
    blocking: bool
    resampled_rows: int  # rows the intervals were resampled from (all, or a seeded sample)

    def exceeded(self) -> pl.DataFrame:
        return self.disparities.filter(~pl.col("within"))


def _resampled_rates(
    y: np.ndarray, label: np.ndarray, group: np.ndarray, k: int, indices: np.ndarray
) -> np.ndarray:
    """(resamples, rates, groups): the three rates per group on every resample."""
    out = []
    step = max(1, _CHUNK_CELLS // max(indices.shape[1], 1))
    for block in np.split(indices, range(step, len(indices), step)):
        b = len(block)
        key = (np.arange(b)[:, None] * k + group[block]).ravel()
        yy, ll = y[block].ravel(), label[block].ravel()

        def count(weights: np.ndarray | None, key: np.ndarray = key, b: int = b) -> np.ndarray:
            return np.bincount(key, weights=weights, minlength=b * k).reshape(b, k)

        rows, selected, positives = count(None).astype(float), count(ll), count(yy)
        true_pos = count(ll * yy)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(
                np.stack(
                    [
                        selected / rows,
                        true_pos / positives,
                        (selected - true_pos) / (rows - positives),
                    ],
                    axis=1,
                )
            )
    return np.concatenate(out)


def _spread(rates: np.ndarray) -> np.ndarray:
    """Largest minus smallest defined value along the last axis (NaN with fewer than two)."""
    defined = np.sum(~np.isnan(rates), axis=-1)
    with warnings.catch_warnings():  # all-NaN columns: NaN, as intended
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanmax(rates, axis=-1) - np.nanmin(rates, axis=-1)
    return np.where(defined >= 2, spread, np.nan)


def _disparity(rates: np.ndarray, which: tuple[str, ...]) -> np.ndarray:
    parts = [_spread(rates[..., RATES.index(r), :]) for r in which]
    if len(parts) == 1:
        return parts[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmax(np.stack(parts), axis=0)


def assess(
    columns: dict[str, np.ndarray],
    y: np.ndarray,
    labels: np.ndarray,
    *,
    disparities: tuple[str, ...] = tuple(DISPARITIES),
    bound: float | None = None,
    blocking: bool = False,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    max_rows: int = 20_000,
    min_group_rows: int = 30,
) -> Fairness:
    """Rates per group of each of ``columns`` (name -> test-row values), 0/1 truth ``y`` and
    decision ``labels``; intervals from ``samples`` row resamples (of a seeded sample of
    ``max_rows`` rows when there are more: the resamples cost samples x rows). A rate of a
    group with fewer than ``min_group_rows`` rows it is a share of (all, positives,
    negatives) is shown but not counted in the disparities."""
    y, labels = np.asarray(y, dtype=float), np.asarray(labels, dtype=float)
    n = len(y)
    max_rows = max(max_rows, 1000)
    alpha = (1 - confidence) / 2
    rng = np.random.default_rng([seed, 5])
    sample = np.sort(rng.choice(n, max_rows, replace=False)) if n > max_rows else np.arange(n)
    indices = sample[rng.integers(0, len(sample), size=(samples, len(sample)))]
    group_rows: list[dict[str, object]] = []
    disparity_rows: list[dict[str, object]] = []
    for column, values in columns.items():
        names = sorted({str(v) for v in values.tolist()})
        group = np.searchsorted(np.asarray(names), np.asarray([str(v) for v in values.tolist()]))
        k = len(names)
        point = _resampled_rates(y, labels, group, k, np.arange(n)[None, :])[0]
        boot = _resampled_rates(y, labels, group, k, indices)
        with warnings.catch_warnings():  # a rate undefined in every resample stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            lower = np.nanquantile(boot, alpha, axis=0)
            upper = np.nanquantile(boot, 1 - alpha, axis=0)
        rows = np.bincount(group, minlength=k)
        positives = np.bincount(group, weights=y, minlength=k).astype(int)
        enough = np.stack([rows, positives, rows - positives]) >= min_group_rows
        for g, name in enumerate(names):
            row: dict[str, object] = {
                "column": column,
                "group": name,
                "rows": int(rows[g]),
                "positives": int(positives[g]),
            }
            for r, rate in enumerate(RATES):
                row[rate] = float(point[r, g])
                row[f"{rate}_lower"] = float(lower[r, g])
                row[f"{rate}_upper"] = float(upper[r, g])
            few = [rate for r, rate in enumerate(RATES) if not enough[r, g]]
            row["note"] = f"too few rows for {', '.join(few)}: not in disparities" if few else ""
            group_rows.append(row)
        point, boot = np.where(enough, point, np.nan), np.where(enough, boot, np.nan)
        for disparity in disparities:
            which = DISPARITIES[disparity]
            value = float(_disparity(point, which))
            spread = _disparity(boot, which)
            spread = spread[~np.isnan(spread)]
            lo, hi = np.quantile(spread, [alpha, 1 - alpha]) if len(spread) else (np.nan, np.nan)
            within = bound is None or np.isnan(value) or value <= bound
            disparity_rows.append(
                {
                    "column": column,
                    "disparity": disparity,
                    "value": value,
                    "lower": float(lo),
                    "upper": float(hi),
                    "bound": bound if bound is not None else float("nan"),
                    "within": bool(within),
                }
            )
    return Fairness(
        pl.DataFrame(group_rows), pl.DataFrame(disparity_rows), bound, blocking, len(sample)
    )
