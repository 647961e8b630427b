"""Forecasting models behind one interface: fit on history, forecast h steps with intervals.

Baselines: naive, seasonal naive, drift, mean. Candidates: ETS and SARIMAX (statsmodels),
Prophet, and LightGBM forecasting recursively on lag, rolling and season-position features of
the first-differenced series (trees cannot extrapolate a trend; differences remove it).
"""

from __future__ import annotations

import dataclasses
import logging
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy import stats

from ml_assets.lib.cores import available_threads
from ml_assets.lib.models import Model
from ml_assets.lib.spec import LightGBMCandidate, MLSpec
from ml_assets.lib.timeseries import FeatureBuilder, Fold, assert_no_lookahead, lag_features

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Forecast:
    mean: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


@dataclass
class Forecaster(Model):
    """A forecaster; ``fit`` returns a fitted copy, the unfitted one stays reusable."""

    time_column: str = ""
    target: str = ""
    frequency: str = ""
    seasonal_period: int = 1
    level: float = 0.95
    exogenous: list[str] = field(default_factory=list)
    last_time: Any = None
    n_train: int = 0
    last_exogenous: dict[str, Any] = field(default_factory=dict)

    def fit(self, history: pl.DataFrame) -> Forecaster:
        fitted = dataclasses.replace(self)
        fitted.last_time = history[self.time_column].max()
        fitted.n_train = history.height
        fitted.last_exogenous = {c: history[c][-1] for c in self.exogenous}
        fitted._fit(history[self.target].cast(pl.Float64).to_numpy(), history)
        return fitted

    def forecast(self, horizon: int, future: pl.DataFrame | None = None) -> Forecast:
        if self.last_time is None:
            raise ValueError(f"forecaster '{self.name}' is not fitted")
        return self._forecast(horizon, future)

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Forecasts for the timestamps in ``frame`` (all after the training data)."""
        steps = steps_ahead(self.last_time, frame[self.time_column], self.frequency)
        if (steps < 1).any():
            raise ValueError(
                f"forecaster '{self.name}' can only predict after its training data, which ends "
                f"at {self.last_time}; got {frame[self.time_column].min()}"
            )
        mean = self.forecast(int(steps.max()), _future_for(frame, steps)).mean
        return mean[steps - 1]

    def future_frame(self, horizon: int) -> pl.DataFrame:
        """The next ``horizon`` timestamps; exogenous columns hold their last known values."""
        times = _grid_after(self.last_time, horizon, self.frequency)
        frame = pl.DataFrame({self.time_column: times})
        return frame.with_columns([pl.lit(v).alias(c) for c, v in self.last_exogenous.items()])

    @property
    def z(self) -> float:
        return float(stats.norm.ppf((1 + self.level) / 2))

    @abstractmethod
    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None: ...

    @abstractmethod
    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> Forecast: ...


def steps_ahead(last_time: Any, times: pl.Series, frequency: str) -> np.ndarray:
    """How many grid steps after ``last_time`` each of ``times`` is (1 = the next step)."""
    if times.dtype.is_integer():
        offset = times.to_numpy() - int(last_time)
        off_grid = offset % int(frequency) != 0
        if off_grid.any():
            raise ValueError(
                f"timestamps {times.to_numpy()[off_grid][:3].tolist()} are not on the "
                f"'{frequency}' grid after {last_time}"
            )
        return (offset // int(frequency)).astype(int)
    end = times.max()
    make = pl.date_range if times.dtype == pl.Date else pl.datetime_range
    grid = make(last_time, end, interval=frequency, eager=True).cast(times.dtype)
    position = {t: i for i, t in enumerate(grid.to_list())}
    missing = [t for t in times.to_list() if t not in position]
    if missing:
        raise ValueError(
            f"timestamps {missing[:3]} are not on the '{frequency}' grid after {last_time}"
        )
    return np.array([position[t] for t in times.to_list()], dtype=int)


def _future_for(frame: pl.DataFrame, steps: np.ndarray) -> pl.DataFrame:
    """Rows for steps 1..max: exogenous values where the caller gave them (filled forward)."""
    index = pl.DataFrame({"__step": np.arange(1, steps.max() + 1)})
    given = frame.with_columns(pl.Series("__step", steps))
    return index.join(given, on="__step", how="left").sort("__step").fill_null(strategy="forward")


def _normal_interval(mean: np.ndarray, sd: np.ndarray, z: float) -> Forecast:
    return Forecast(mean, mean - z * sd, mean + z * sd)


@dataclass
class NaiveForecaster(Forecaster):
    last: float = 0.0
    sigma: float = 0.0

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        self.last, self.sigma = float(y[-1]), float(np.std(np.diff(y), ddof=1))

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> Forecast:
        h = np.arange(1, horizon + 1)
        return _normal_interval(np.full(horizon, self.last), self.sigma * np.sqrt(h), self.z)


@dataclass
class SeasonalNaiveForecaster(Forecaster):
    season: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sigma: float = 0.0

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        m = self.seasonal_period
        self.season = y[-m:].copy()
        self.sigma = float(np.std(y[m:] - y[:-m], ddof=1))

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> Forecast:
        m, h = self.seasonal_period, np.arange(1, horizon + 1)
        mean = self.season[(h - 1) % m]
        return _normal_interval(mean, self.sigma * np.sqrt((h - 1) // m + 1), self.z)


@dataclass
class DriftForecaster(Forecaster):
    last: float = 0.0
    slope: float = 0.0
    sigma: float = 0.0

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        n = len(y)
        self.last, self.slope = float(y[-1]), float((y[-1] - y[0]) / max(n - 1, 1))
        self.sigma = float(np.std(np.diff(y) - self.slope, ddof=1))

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> Forecast:
        h, n = np.arange(1, horizon + 1), self.n_train
        sd = self.sigma * np.sqrt(h * (1 + h / max(n - 1, 1)))
        return _normal_interval(self.last + h * self.slope, sd, self.z)


@dataclass
class MeanForecaster(Forecaster):
    mu: float = 0.0
    sigma: float = 0.0

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        self.mu, self.sigma = float(np.mean(y)), float(np.std(y, ddof=1) * np.sqrt(1 + 1 / len(y)))

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> Forecast:
        return _normal_interval(np.full(horizon, self.mu), np.full(horizon, self.sigma), self.z)


@dataclass
class ETSForecaster(Forecaster):
    trend: str | None = "add"
    damped_trend: bool = False
    seasonal: str | None = "add"
    result: Any = None

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        seasonal = self.seasonal if self.seasonal_period > 1 else None
        model = ETSModel(
            pd.Series(y),
            error="add",
            trend=self.trend,
            damped_trend=self.damped_trend and bool(self.trend),
            seasonal=seasonal,
            seasonal_periods=self.seasonal_period if seasonal else None,
        )
        self.result = model.fit(disp=False, maxiter=200)

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> Forecast:
        n = self.n_train
        frame = self.result.get_prediction(start=n, end=n + horizon - 1).summary_frame(
            alpha=1 - self.level
        )
        return Forecast(
            frame["mean"].to_numpy(), frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy()
        )


def fourier_terms(positions: np.ndarray, period: int, pairs: int) -> np.ndarray:
    """sin/cos pairs of the season position: a smooth seasonal shape for any period length."""
    cols = [
        f(2 * np.pi * k * positions / period) for k in range(1, pairs + 1) for f in (np.sin, np.cos)
    ]
    return np.column_stack(cols) if cols else np.empty((len(positions), 0))


@dataclass
class SARIMAXForecaster(Forecaster):
    order: tuple[int, int, int] = (1, 1, 1)
    fourier_pairs: int = 3
    trend: str = "c"
    result: Any = None

    def _exog(self, positions: np.ndarray, frame: pl.DataFrame | None) -> np.ndarray | None:
        parts = [fourier_terms(positions, self.seasonal_period, self.fourier_pairs)]
        if self.exogenous and frame is not None:
            parts.append(frame.select(self.exogenous).cast(pl.Float64).to_numpy())
        exog = np.column_stack(parts)
        return exog if exog.shape[1] else None

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        import statsmodels.api as sm

        exog = self._exog(np.arange(len(y)), history)
        trend = self.trend if self.order[1] == 0 or self.trend in ("n", "t") else "t"
        model = sm.tsa.SARIMAX(y, exog=exog, order=self.order, trend=trend)
        self.result = model.fit(disp=False, maxiter=200)

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> Forecast:
        positions = np.arange(self.n_train, self.n_train + horizon)
        fc = self.result.get_forecast(horizon, exog=self._exog(positions, future))
        ci = np.asarray(fc.conf_int(alpha=1 - self.level))
        return Forecast(np.asarray(fc.predicted_mean), ci[:, 0], ci[:, 1])


@dataclass
class ProphetForecaster(Forecaster):
    seasonality_mode: str = "additive"
    uncertainty_samples: int = 300
    changepoint_prior_scale: float = 0.05
    model: Any = None

    def _frame(self, times: pl.Series, frame: pl.DataFrame | None) -> Any:
        data = {"ds": times.cast(pl.Datetime("us"))}
        if frame is not None:
            data |= {c: frame[c].cast(pl.Float64) for c in self.exogenous}
        return pl.DataFrame(data).to_pandas()

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        from prophet import Prophet

        logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
        model = Prophet(
            seasonality_mode=self.seasonality_mode,
            interval_width=self.level,
            uncertainty_samples=self.uncertainty_samples,
            changepoint_prior_scale=self.changepoint_prior_scale,
            daily_seasonality=False,
            weekly_seasonality=False,
        )
        for column in self.exogenous:
            model.add_regressor(column)
        frame = self._frame(history[self.time_column], history)
        frame["y"] = y
        self.model = model.fit(frame)

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> Forecast:
        times = _grid_after(self.last_time, horizon, self.frequency)
        out = self.model.predict(self._frame(times, future))
        lower = out["yhat_lower"].to_numpy() if self.uncertainty_samples else None
        upper = out["yhat_upper"].to_numpy() if self.uncertainty_samples else None
        return Forecast(out["yhat"].to_numpy(), lower, upper)


def _grid_after(last_time: Any, horizon: int, frequency: str) -> pl.Series:
    """The ``horizon`` grid timestamps after ``last_time``."""
    if isinstance(last_time, int):
        return pl.Series(last_time + int(frequency) * np.arange(1, horizon + 1))
    count = int("".join(ch for ch in frequency if ch.isdigit()) or 1)
    unit = "".join(ch for ch in frequency if not ch.isdigit())
    frame = pl.DataFrame(
        {"t": [last_time] * horizon, "o": [f"{(i + 1) * count}{unit}" for i in range(horizon)]}
    )
    return frame.select(pl.col("t").dt.offset_by(pl.col("o"))).to_series()


@dataclass
class LightGBMForecaster(Forecaster):
    """Recursive one-step model of the first difference; the check for look-ahead runs at fit."""

    lags: list[int] = field(default_factory=list)
    windows: list[int] = field(default_factory=list)
    lgb_params: dict[str, Any] = field(default_factory=dict)
    rounds: int = 200
    booster: Any = None
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0))
    builder: FeatureBuilder | None = None

    def _positions(self, start: int, n: int) -> np.ndarray:
        return (np.arange(start, start + n) % self.seasonal_period).astype(float)

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        import lightgbm as lgb

        self.builder = lag_features(self.lags, self.windows)
        dy = np.diff(y)
        periods = self._positions(1, len(dy))
        assert_no_lookahead(self.builder, dy, periods)
        x = self.builder(dy, periods)
        start = max([*self.lags, *self.windows, 1])
        train = lgb.Dataset(x[start:], dy[start:], free_raw_data=False)
        self.booster = lgb.train(self.lgb_params, train, self.rounds)
        self.tail = y.copy()

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> Forecast:
        assert self.builder is not None
        y = list(self.tail)
        dy = list(np.diff(self.tail))
        for _ in range(horizon):
            arr = np.asarray(dy + [np.nan])
            row = self.builder(arr, self._positions(1, len(arr)))[-1:]
            step = float(self.booster.predict(row)[0])
            dy.append(step)
            y.append(y[-1] + step)
        return Forecast(np.asarray(y[-horizon:]))


def _common(spec: MLSpec, role: str) -> dict[str, Any]:
    assert spec.forecast is not None and spec.time_column is not None
    return {
        "role": role,
        "task": "forecasting",
        "features": [spec.time_column, *spec.forecast.exogenous],
        "time_column": spec.time_column,
        "target": spec.target,
        "frequency": spec.forecast.frequency,
        "seasonal_period": spec.forecast.seasonal_period,
        "level": spec.evaluation.confidence,
        "exogenous": list(spec.forecast.exogenous),
    }


def baselines(spec: MLSpec) -> list[Forecaster]:
    c = _common(spec, "baseline")
    return [
        NaiveForecaster("naive", "naive", **c),
        SeasonalNaiveForecaster("seasonal_naive", "seasonal_naive", **c),
        DriftForecaster("drift", "drift", **c),
        MeanForecaster("mean", "mean", **c),
    ]


def candidate(spec: MLSpec, family: str) -> Forecaster:
    c, cfg = _common(spec, "candidate"), spec.candidates.config(family)
    if family == "ets":
        return ETSForecaster(
            "ets",
            "statsmodels_ets",
            params=cfg.model_dump(),
            trend=cfg.trend,
            damped_trend=cfg.damped_trend,
            seasonal=cfg.seasonal,
            **c,
        )
    if family == "sarimax":
        return SARIMAXForecaster(
            "sarimax",
            "statsmodels_sarimax",
            params=cfg.model_dump(),
            order=tuple(cfg.order),
            fourier_pairs=cfg.fourier_terms,
            trend=cfg.trend,
            **c,
        )
    if family == "prophet":
        return ProphetForecaster(
            "prophet",
            "prophet",
            params=cfg.model_dump(),
            seasonality_mode=cfg.seasonality_mode,
            uncertainty_samples=cfg.uncertainty_samples,
            changepoint_prior_scale=cfg.changepoint_prior_scale,
            **c,
        )
    return _lightgbm(spec, cfg, c)


def _lightgbm(spec: MLSpec, cfg: LightGBMCandidate, common: dict[str, Any]) -> Forecaster:
    m = spec.forecast.seasonal_period if spec.forecast else 1
    lags = sorted({1, 2, 3, *([m] if m > 1 else [])})
    windows = sorted({4, *([m] if m > 4 else [])})
    params = {
        "objective": "regression",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 10,
        "deterministic": True,
        "force_row_wise": True,
        "seed": spec.split.seed,
        "num_threads": available_threads(),
        "verbosity": -1,
        **cfg.params,
    }
    rounds = min(cfg.num_boost_round, 300)
    return LightGBMForecaster(
        "lightgbm",
        "lightgbm",
        params={
            **params,
            "lags": lags,
            "windows": windows,
            "rounds": rounds,
            "target": "first difference",
        },
        lags=lags,
        windows=windows,
        lgb_params=params,
        rounds=rounds,
        **common,
    )


def backtest(model: Forecaster, series: pl.DataFrame, folds: list[Fold]) -> pl.DataFrame:
    """Forecasts per fold from a model fitted only on the rows before the fold's origin."""
    from ml_assets.lib.forecast_eval import mase_scale

    parts = []
    for fold in folds:
        history = series.head(fold.origin)
        future = series.slice(fold.origin, fold.horizon)
        # The forecaster sees the future's timestamps and exogenous values, never its target.
        fc = model.fit(history).forecast(fold.horizon, future.drop(model.target))
        scale = mase_scale(history[model.target].cast(pl.Float64).to_numpy(), model.seasonal_period)
        parts.append(forecast_frame(model, future, fc, fold=fold.index, scale=scale))
    return pl.concat(parts)


def forecast_frame(
    model: Forecaster, future: pl.DataFrame, fc: Forecast, fold: int, scale: float
) -> pl.DataFrame:
    h = len(fc.mean)
    nan = np.full(h, np.nan)
    return pl.DataFrame(
        {
            "model": [model.name] * h,
            "fold": [fold] * h,
            "step": np.arange(1, h + 1),
            "time": future[model.time_column],
            "actual": future[model.target].cast(pl.Float64),
            "mean": fc.mean,
            "lower": fc.lower if fc.lower is not None else nan,
            "upper": fc.upper if fc.upper is not None else nan,
            "scale": [scale] * h,
        }
    )
