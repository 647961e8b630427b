"""The forecaster interface (fit on history, forecast h steps with intervals), the time grid
helpers it needs, and the naive baselines: naive, seasonal naive, drift, mean."""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from ml_assets.lib.models import Model


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
        mean = self.forecast(int(steps.max()), future_for(frame, steps)).mean
        return mean[steps - 1]

    def future_frame(self, horizon: int) -> pl.DataFrame:
        """The next ``horizon`` timestamps; exogenous columns hold their last known values."""
        times = grid_after(self.last_time, horizon, self.frequency)
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


def future_for(frame: pl.DataFrame, steps: np.ndarray) -> pl.DataFrame:
    """Rows for steps 1..max: exogenous values where the caller gave them (filled forward)."""
    index = pl.DataFrame({"__step": np.arange(1, steps.max() + 1)})
    given = frame.with_columns(pl.Series("__step", steps))
    return index.join(given, on="__step", how="left").sort("__step").fill_null(strategy="forward")


def normal_interval(mean: np.ndarray, sd: np.ndarray, z: float) -> Forecast:
    return Forecast(mean, mean - z * sd, mean + z * sd)


@dataclass
class NaiveForecaster(Forecaster):
    last: float = 0.0
    sigma: float = 0.0

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        self.last, self.sigma = float(y[-1]), float(np.std(np.diff(y), ddof=1))

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> Forecast:
        h = np.arange(1, horizon + 1)
        return normal_interval(np.full(horizon, self.last), self.sigma * np.sqrt(h), self.z)


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
        return normal_interval(mean, self.sigma * np.sqrt((h - 1) // m + 1), self.z)


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
        return normal_interval(self.last + h * self.slope, sd, self.z)


@dataclass
class MeanForecaster(Forecaster):
    mu: float = 0.0
    sigma: float = 0.0

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        self.mu, self.sigma = float(np.mean(y)), float(np.std(y, ddof=1) * np.sqrt(1 + 1 / len(y)))

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> Forecast:
        return normal_interval(np.full(horizon, self.mu), np.full(horizon, self.sigma), self.z)


def grid_after(last_time: Any, horizon: int, frequency: str) -> pl.Series:
    """The ``horizon`` grid timestamps after ``last_time``."""
    if isinstance(last_time, int):
        return pl.Series(last_time + int(frequency) * np.arange(1, horizon + 1))
    count = int("".join(ch for ch in frequency if ch.isdigit()) or 1)
    unit = "".join(ch for ch in frequency if not ch.isdigit())
    frame = pl.DataFrame(
        {"t": [last_time] * horizon, "o": [f"{(i + 1) * count}{unit}" for i in range(horizon)]}
    )
    return frame.select(pl.col("t").dt.offset_by(pl.col("o"))).to_series()
