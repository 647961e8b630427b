"""The leakage guard: a feature builder that looks at or past the forecast origin is caught."""

from __future__ import annotations

import numpy as np
import pytest

from ml_assets.lib.timeseries import LeakageError, assert_no_lookahead, lag_features


def _series() -> tuple[np.ndarray, np.ndarray]:
    y = np.sin(np.arange(200) / 5) + np.arange(200) * 0.01
    return y, (np.arange(200) % 12).astype(float)


def test_lag_and_rolling_features_pass() -> None:
    y, periods = _series()
    assert_no_lookahead(lag_features([1, 2, 12], [3, 12]), y, periods)


def test_builder_peeking_one_step_ahead_is_caught() -> None:
    def peeks(y: np.ndarray, periods: np.ndarray) -> np.ndarray:
        ahead = np.full(len(y), np.nan)
        ahead[:-1] = y[1:]  # row t sees y[t+1]
        return np.column_stack([lag_features([1], [3])(y, periods), ahead])

    y, periods = _series()
    with pytest.raises(LeakageError, match=r"feature column\(s\) \[3\] at row"):
        assert_no_lookahead(peeks, y, periods)


def test_builder_using_the_current_value_is_caught() -> None:
    def uses_now(y: np.ndarray, periods: np.ndarray) -> np.ndarray:
        return np.column_stack([y, periods])  # row t sees y[t], the value being forecast

    y, periods = _series()
    with pytest.raises(LeakageError, match="looks ahead of the forecast origin"):
        assert_no_lookahead(uses_now, y, periods)


def test_lightgbm_forecaster_runs_the_guard_at_fit() -> None:
    import polars as pl

    from ml_assets.lib.families import forecaster
    from ml_assets.lib.spec import MLSpec

    spec = MLSpec.model_validate(
        {
            "name": "toy",
            "task": "forecasting",
            "source": {"statsmodels": "co2"},
            "time_column": "t",
            "target": "y",
            "candidates": {"lightgbm": {}},
            "forecast": {"frequency": "1", "horizon": 6, "seasonal_period": 12, "folds": 1},
        }
    )
    model = forecaster(spec, "lightgbm")
    y, _ = _series()
    history = pl.DataFrame({"t": np.arange(200), "y": y})
    model.lags = [0]  # a "lag" of 0 is the value being predicted: the guard must refuse it
    with pytest.raises(LeakageError):
        model.fit(history)
