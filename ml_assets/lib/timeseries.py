"""Time-series data: the time index contract, regularisation and imputation, backtest folds,
lag features and the check that a feature builder never looks past its forecast origin."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from ml_assets.lib.data import SPLIT, DataError
from ml_assets.lib.spec import ForecastConfig, MLSpec

IMPUTED = "__imputed"


def _cfg(spec: MLSpec) -> ForecastConfig:
    assert spec.forecast is not None and spec.time_column is not None
    return spec.forecast


def grid(spec: MLSpec, start: object, end: object, dtype: pl.DataType) -> pl.Series:
    """Every timestamp from ``start`` to ``end`` at the spec's frequency."""
    freq = _cfg(spec).frequency
    if dtype.is_integer():
        return pl.Series(np.arange(int(start), int(end) + 1, int(freq)))  # type: ignore[call-overload]
    if dtype == pl.Date:
        return pl.date_range(start, end, interval=freq, eager=True)  # type: ignore[arg-type]
    return pl.datetime_range(start, end, interval=freq, eager=True)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TimeIndexReport:
    """What the time column looks like against the declared frequency."""

    rows: int
    duplicates: int
    duplicate_examples: list[str]
    monotonic: bool
    off_grid: int
    off_grid_examples: list[str]
    common_step: str
    missing_steps: int
    target_nulls: int
    expected_steps: int
    typical_gap_steps: int = 1

    @property
    def gap_fraction(self) -> float:
        return (self.missing_steps + self.target_nulls) / max(self.expected_steps, 1)

    def problems(self, spec: MLSpec) -> list[str]:
        cfg, col = _cfg(spec), spec.time_column
        out = []
        if self.duplicates:
            out.append(
                f"{self.duplicates} duplicated timestamps in '{col}', e.g. "
                f"{self.duplicate_examples}; keep one row per timestamp"
            )
        if not self.monotonic:
            out.append(f"'{col}' is not in increasing order; sort the data by time")
        if self.off_grid:
            out.append(
                f"{self.off_grid} of {self.rows} timestamps in '{col}' are not on the "
                f"'{cfg.frequency}' grid starting at the first timestamp (e.g. "
                f"{self.off_grid_examples}); the most common spacing in the data is "
                f"{self.common_step}: fix 'forecast.frequency' or the data"
            )
        if self.typical_gap_steps > 1 and not self.off_grid:
            out.append(
                f"consecutive timestamps in '{col}' are usually {self.typical_gap_steps} steps "
                f"of '{cfg.frequency}' apart (most common spacing {self.common_step}); the data "
                "is coarser than the declared frequency: fix 'forecast.frequency'"
            )
        if self.off_grid or self.typical_gap_steps > 1:
            return out  # gaps are meaningless against the wrong grid
        if self.gap_fraction > cfg.max_gap_fraction:
            out.append(
                f"{self.missing_steps} missing timestamps and {self.target_nulls} null "
                f"'{spec.target}' values make {self.gap_fraction:.1%} of {self.expected_steps} "
                f"steps gaps, over forecast.max_gap_fraction {cfg.max_gap_fraction:.1%}"
            )
        if self.target_nulls + self.missing_steps and cfg.imputation == "none":
            out.append(
                f"{self.missing_steps + self.target_nulls} gaps in '{spec.target}' and "
                "forecast.imputation is 'none'; declare 'linear' or 'forward_fill'"
            )
        return out


def _duration(step: object) -> str:
    """A spacing written the way 'forecast.frequency' takes it (7d, 6h, 30m; or an integer)."""
    if not isinstance(step, dt.timedelta):
        return str(step)
    seconds = int(step.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def inspect_time_index(spec: MLSpec, frame: pl.DataFrame) -> TimeIndexReport:
    col = spec.time_column
    assert col is not None
    times = frame[col]
    counts = frame.group_by(col).len().filter(pl.col("len") > 1)
    valid = times.drop_nulls()
    diffs = valid.sort().diff().drop_nulls()
    common = _duration(diffs.mode().sort()[0]) if len(diffs) else "n/a"
    expected = grid(spec, valid.min(), valid.max(), times.dtype) if len(valid) else pl.Series([])
    on_grid = valid.is_in(expected.implode()) if len(valid) else valid.cast(pl.Boolean)
    off = valid.filter(~on_grid)
    missing = int((~expected.is_in(valid.implode())).sum()) if len(expected) else 0
    typical = 1
    if len(expected) and len(valid) > 2:
        position = {t: i for i, t in enumerate(expected.to_list())}
        steps = np.diff([position[t] for t in valid.sort().to_list() if t in position])
        typical = int(np.bincount(steps[steps > 0]).argmax()) if (steps > 0).any() else 1
    return TimeIndexReport(
        rows=frame.height,
        duplicates=counts.height,
        duplicate_examples=[str(v) for v in counts[col].head(3).to_list()],
        monotonic=bool(times.is_sorted()) and times.null_count() == 0,
        off_grid=len(off),
        off_grid_examples=[str(v) for v in off.head(3).to_list()],
        common_step=common,
        missing_steps=missing,
        target_nulls=int(frame[spec.target].null_count()),
        expected_steps=len(expected),
        typical_gap_steps=typical,
    )


def regularize(spec: MLSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """Sorted, one row per grid step, gaps in the target imputed as declared and flagged."""
    col, cfg = spec.time_column, _cfg(spec)
    assert col is not None
    frame = frame.sort(col)
    full = pl.DataFrame({col: grid(spec, frame[col].min(), frame[col].max(), frame[col].dtype)})
    full = full.with_columns(pl.col(col).cast(frame[col].dtype)).join(frame, on=col, how="left")
    full = full.with_columns(pl.col(spec.target).is_null().alias(IMPUTED))
    if cfg.imputation == "linear":
        full = full.with_columns(pl.col(spec.target).cast(pl.Float64).interpolate())
    elif cfg.imputation == "forward_fill":
        full = full.with_columns(pl.col(spec.target).forward_fill())
    exog = [c for c in cfg.exogenous if c in full.columns]
    return full.with_columns([pl.col(c).forward_fill() for c in exog])


@dataclass(frozen=True)
class Fold:
    """One rolling-origin fold: train on rows [0, origin), forecast rows [origin, origin+h)."""

    index: int
    origin: int
    horizon: int

    @property
    def test_rows(self) -> range:
        return range(self.origin, self.origin + self.horizon)


def min_train_rows(spec: MLSpec) -> int:
    return max(2 * _cfg(spec).seasonal_period, 10)


def backtest_folds(spec: MLSpec, n_rows: int) -> list[Fold]:
    """Expanding-window folds over the rows before the holdout, the last ending at its end."""
    cfg = _cfg(spec)
    first_origin = n_rows - cfg.folds * cfg.horizon
    if first_origin < min_train_rows(spec):
        total = n_rows + cfg.horizon
        raise DataError(
            f"spec '{spec.name}': {total} steps of '{spec.target}' are too few for horizon "
            f"{cfg.horizon} x ({cfg.folds} folds + 1 holdout) = {(cfg.folds + 1) * cfg.horizon} "
            f"steps plus at least {min_train_rows(spec)} training steps (2 seasonal periods of "
            f"{cfg.seasonal_period}); lower 'forecast.horizon' or 'forecast.folds', or use a "
            "longer series"
        )
    return [Fold(i, first_origin + i * cfg.horizon, cfg.horizon) for i in range(cfg.folds)]


def assign_forecast_splits(spec: MLSpec, series: pl.DataFrame) -> pl.DataFrame:
    """The last ``horizon`` steps are the holdout ('test'); everything before is 'train'."""
    h = _cfg(spec).horizon
    backtest_folds(spec, series.height - h)  # raises with the numbers when too short
    labels = ["train"] * (series.height - h) + ["test"] * h
    return series.with_columns(pl.Series(SPLIT, labels))


def check_folds_before_origin(
    spec: MLSpec, splits: pl.DataFrame
) -> tuple[bool, str, dict[str, str]]:
    """Proof per fold that its training rows all lie strictly before its forecast origin."""
    col = spec.time_column
    assert col is not None
    train = splits.filter(pl.col(SPLIT) == "train").sort(col)
    holdout_start = splits.filter(pl.col(SPLIT) == "test")[col].min()
    meta: dict[str, str] = {}
    problems = []
    for fold in backtest_folds(spec, train.height):
        last_train = train[col][fold.origin - 1]
        origin = train[col][fold.origin]
        meta[f"fold_{fold.index}"] = f"train to {last_train}, forecast {origin} +{fold.horizon}"
        if not last_train < origin:
            problems.append(f"fold {fold.index} trains on {last_train} >= origin {origin}")
    if not train[col].max() < holdout_start:
        problems.append(f"training data reaches {train[col].max()} >= holdout {holdout_start}")
    detail = "; ".join(problems) or "every fold and the holdout train only on earlier data"
    return not problems, detail, meta


FeatureBuilder = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class LagFeatures:
    """Row t gets y[t-lag] for each lag and the mean of y[t-w:t] for each window, plus the
    season position of row t (a calendar feature, known in advance)."""

    lags: tuple[int, ...]
    windows: tuple[int, ...]

    def __call__(self, y: np.ndarray, periods: np.ndarray) -> np.ndarray:
        n = len(y)
        cols = []
        for lag in self.lags:
            shifted = np.full(n, np.nan)
            shifted[lag:] = y[: n - lag]
            cols.append(shifted)
        cumsum = np.concatenate([[0.0], np.nancumsum(y)])
        for w in self.windows:
            roll = np.full(n, np.nan)
            roll[w:] = (cumsum[w:n] - cumsum[: n - w]) / w
            cols.append(roll)
        cols.append(periods.astype(float))
        return np.column_stack(cols)


def lag_features(lags: list[int], windows: list[int]) -> FeatureBuilder:
    return LagFeatures(tuple(lags), tuple(windows))


class LeakageError(ValueError):
    """A feature builder used information from at or after the row it builds features for."""


def assert_no_lookahead(builder: FeatureBuilder, y: np.ndarray, periods: np.ndarray) -> None:
    """Change every value from row t on; row t's features must not move. Checked at several t."""
    base = builder(y, periods)
    for t in np.linspace(len(y) // 2, len(y) - 1, 5).astype(int):
        future_changed = y.copy()
        future_changed[t:] = future_changed[t:] * 3.0 + 1e6
        features = builder(future_changed, periods)
        moved = ~np.isclose(base[t], features[t], equal_nan=True)
        if moved.any():
            raise LeakageError(
                f"feature column(s) {np.flatnonzero(moved).tolist()} at row {t} change when "
                f"values at or after row {t} change: the builder looks ahead of the forecast "
                "origin"
            )


def mase_scale(y: np.ndarray, period: int) -> float:
    """In-sample MAE of the seasonal naive forecast (naive when the series is too short)."""
    m = period if len(y) > period else 1
    scale = float(np.mean(np.abs(y[m:] - y[:-m]))) if len(y) > m else 0.0
    return scale if scale > 0 else 1.0


YEAR_DAYS = 365.2425
_STEP_DAYS = {"w": 7.0, "d": 1.0, "h": 1 / 24}


def seasonal_cycle(frequency: str, seasonal_period: int) -> float:
    """The length of the seasonal cycle in steps, for terms that follow the calendar: a yearly
    season has 52.18 weekly or 365.24 daily steps, not the whole 52 or 365 a spec declares (a
    52-step cycle drifts 8 weeks from the calendar in 40 years). Any other period as declared."""
    match = re.fullmatch(r"(\d+)([wdh])", frequency.strip())
    if match is None or seasonal_period < 2:
        return float(seasonal_period)
    steps_a_year = YEAR_DAYS / (int(match.group(1)) * _STEP_DAYS[match.group(2)])
    near_a_year = abs(seasonal_period - steps_a_year) / steps_a_year < 0.03
    return steps_a_year if near_a_year else float(seasonal_period)


def differences_needed(y: np.ndarray, exog: np.ndarray | None, alpha: float = 0.05) -> int:
    """0 or 1: one difference when a KPSS test rejects (level) stationarity of ``y`` less its
    regression on ``exog`` (the seasonal terms), as auto-ARIMA procedures choose d."""
    import warnings

    from statsmodels.tools.sm_exceptions import InterpolationWarning
    from statsmodels.tsa.stattools import kpss

    rest = y - y.mean()
    if exog is not None:
        design = np.column_stack([np.ones(len(y)), exog])
        rest = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    with warnings.catch_warnings():  # p-values beyond the table's ends are its ends
        warnings.simplefilter("ignore", InterpolationWarning)
        p_value = kpss(rest, regression="c", nlags="auto")[1]
    return int(p_value < alpha)
