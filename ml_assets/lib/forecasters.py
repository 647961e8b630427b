"""Forecasting candidates behind the interface of forecast_base.py: Holt-Winters ETS and SARIMAX
with Fourier terms of the calendar season (statsmodels), Prophet, and LightGBM forecasting
recursively on lag, rolling and season-position features of the first-differenced series
(trees cannot extrapolate a trend; differences remove it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ml_assets.lib.cores import available_threads
from ml_assets.lib.forecast_base import (  # noqa: F401 (also this module's API: pickles and tests name them here)
    DriftForecaster,
    Forecast,
    Forecaster,
    MeanForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
    future_for,
    grid_after,
    normal_interval,
    steps_ahead,
)
from ml_assets.lib.spec import (
    ETSCandidate,
    LightGBMCandidate,
    MLSpec,
    ProphetCandidate,
    SARIMAXCandidate,
)
from ml_assets.lib.timeseries import (
    FeatureBuilder,
    Fold,
    assert_no_lookahead,
    differences_needed,
    lag_features,
    mase_scale,
    seasonal_cycle,
)

log = logging.getLogger(__name__)


@dataclass
class ETSForecaster(Forecaster):
    """Holt-Winters exponential smoothing, additive (statsmodels ``holtwinters``, whose
    optimiser fits long seasonal series where ``ETSModel``'s does not converge).

    Intervals are normal with the h-step variance of the equivalent additive-error state-space
    model: sigma^2 (1 + sum_{j<h} c_j^2), c_j = alpha + alpha beta (phi + ... + phi^j) +
    gamma [m divides j], where beta is the Holt-Winters trend smoothing (the state-space trend
    coefficient is alpha beta) and sigma^2 the in-sample one-step error variance on
    n - (estimated parameters and initial states) degrees of freedom."""

    trend: str | None = "add"
    damped_trend: bool = False
    seasonal: str | None = "add"
    result: Any = None

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        seasonal = self.seasonal if self.seasonal_period > 1 else None
        model = ExponentialSmoothing(
            y,
            trend=self.trend,
            damped_trend=self.damped_trend and bool(self.trend),
            seasonal=seasonal,
            seasonal_periods=self.seasonal_period if seasonal else None,
            initialization_method="estimated",
        )
        self.result = model.fit()

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> Forecast:
        if "exponential_smoothing.ets" in type(self.result).__module__:
            return self._ets_model_forecast(horizon)  # a champion pickled before Holt-Winters
        params = self.result.params
        trend, seasonal = bool(self.result.model.trend), bool(self.result.model.seasonal)
        damped = trend and bool(self.result.model.damped_trend)
        alpha = float(params["smoothing_level"])
        beta = float(params["smoothing_trend"]) if trend else 0.0
        gamma = float(params["smoothing_seasonal"]) if seasonal else 0.0
        phi = float(params["damping_trend"]) if damped else 1.0
        m = self.seasonal_period
        j = np.arange(1, horizon)
        c = alpha + alpha * beta * np.cumsum(phi**j) + (gamma * (j % m == 0) if seasonal else 0.0)
        estimated = 2 + 2 * trend + (m + 1) * seasonal + damped
        sigma2 = float(self.result.sse) / max(self.n_train - estimated, 1)
        sd = np.sqrt(sigma2 * np.concatenate([[1.0], 1 + np.cumsum(c**2)]))
        return normal_interval(np.asarray(self.result.forecast(horizon)), sd, self.z)

    def _ets_model_forecast(self, horizon: int) -> Forecast:
        n = self.n_train
        frame = self.result.get_prediction(start=n, end=n + horizon - 1).summary_frame(
            alpha=1 - self.level
        )
        return Forecast(
            frame["mean"].to_numpy(), frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy()
        )


def fourier_terms(positions: np.ndarray, period: float, pairs: int) -> np.ndarray:
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
    cycle: float = 0.0  # steps per seasonal cycle, set at fit (seasonal_cycle)
    result: Any = None
    # order: auto. Searched again at every fit; `order` then holds the one chosen.
    search_order: bool = False
    max_order: int = 2

    def _exog(self, positions: np.ndarray, frame: pl.DataFrame | None) -> np.ndarray | None:
        # The cycle the model was fitted with (0.0: pickled before it was kept, the declared one)
        parts = [fourier_terms(positions, self.cycle or self.seasonal_period, self.fourier_pairs)]
        if self.exogenous and frame is not None:
            parts.append(frame.select(self.exogenous).cast(pl.Float64).to_numpy())
        exog = np.column_stack(parts)
        return exog if exog.shape[1] else None

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        import statsmodels.api as sm

        self.cycle = seasonal_cycle(self.frequency, self.seasonal_period)
        exog = self._exog(np.arange(len(y)), history)

        def fitted(order: tuple[int, int, int]) -> Any:
            trend = self.trend if order[1] == 0 or self.trend in ("n", "t") else "t"
            model = sm.tsa.SARIMAX(y, exog=exog, order=order, trend=trend)
            return model.fit(disp=False, maxiter=200)

        if not self.search_order:
            self.result = fitted(self.order)
            return
        d = differences_needed(y, exog)
        # AIC compares models of one d only: the likelihoods of other d are of other data.
        results = {}
        for p in range(self.max_order + 1):
            for q in range(self.max_order + 1):
                try:
                    result = fitted((p, d, q))
                except (np.linalg.LinAlgError, ValueError):  # an order that cannot be fitted
                    continue
                if np.isfinite(result.aic):
                    results[(p, d, q)] = result
        if not results:
            raise ValueError(
                f"SARIMAX order: auto: no order with p, q <= {self.max_order} and d = {d} "
                "could be fitted to this history; set a fixed order"
            )
        self.order = min(results, key=lambda o: (results[o].aic, o))
        self.result = results[self.order]
        self.params = {**self.params, "order_selected": list(self.order)}

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
        times = grid_after(self.last_time, horizon, self.frequency)
        out = self.model.predict(self._frame(times, future))
        lower = out["yhat_lower"].to_numpy() if self.uncertainty_samples else None
        upper = out["yhat_upper"].to_numpy() if self.uncertainty_samples else None
        return Forecast(out["yhat"].to_numpy(), lower, upper)


@dataclass
class LightGBMForecaster(Forecaster):
    """Recursive one-step model of the first difference; the check for look-ahead runs at fit."""

    lags: list[int] = field(default_factory=list)
    windows: list[int] = field(default_factory=list)
    lgb_params: dict[str, Any] = field(default_factory=dict)
    rounds: int = 200
    cycle: float = 0.0  # steps per seasonal cycle, set at fit (seasonal_cycle)
    booster: Any = None
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0))
    builder: FeatureBuilder | None = None

    def _positions(self, start: int, n: int) -> np.ndarray:
        # The cycle the model was fitted with (0.0: pickled before it was kept, the declared one)
        return (np.arange(start, start + n) % (self.cycle or self.seasonal_period)).astype(float)

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        import lightgbm as lgb

        self.cycle = seasonal_cycle(self.frequency, self.seasonal_period)

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


def ets(spec: MLSpec, cfg: ETSCandidate) -> Forecaster:
    return ETSForecaster(
        "ets",
        "statsmodels_ets",
        params=cfg.model_dump(),
        trend=cfg.trend,
        damped_trend=cfg.damped_trend,
        seasonal=cfg.seasonal,
        **_common(spec, "candidate"),
    )


def sarimax(spec: MLSpec, cfg: SARIMAXCandidate) -> Forecaster:
    auto = cfg.order == "auto"
    return SARIMAXForecaster(
        "sarimax",
        "statsmodels_sarimax",
        params=cfg.model_dump(),
        order=(1, 1, 1) if auto else tuple(cfg.order),  # type: ignore[arg-type]
        fourier_pairs=cfg.fourier_terms,
        trend=cfg.trend,
        search_order=auto,
        max_order=cfg.max_order,
        **_common(spec, "candidate"),
    )


def prophet(spec: MLSpec, cfg: ProphetCandidate) -> Forecaster:
    return ProphetForecaster(
        "prophet",
        "prophet",
        params=cfg.model_dump(),
        seasonality_mode=cfg.seasonality_mode,
        uncertainty_samples=cfg.uncertainty_samples,
        changepoint_prior_scale=cfg.changepoint_prior_scale,
        **_common(spec, "candidate"),
    )


def lightgbm(spec: MLSpec, cfg: LightGBMCandidate) -> Forecaster:
    """LightGBM on lags and rolling means of the first difference, forecast recursively."""
    common = _common(spec, "candidate")
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
