"""Forecasters that follow the calendar and intervals that match their model: Holt-Winters'
h-step spread against its own recursion, SARIMAX's yearly season on weekly data."""

from __future__ import annotations

import numpy as np
import pytest

from ml_assets.lib import families
from ml_assets_tests.lib.conftest import forecast_spec
from ml_assets_tests.lib.test_forecasters import frame_of, seasonal_series


def _holt_winters_paths(
    alpha: float, beta: float, gamma: float, phi: float, m: int, sigma: float, h: int
) -> np.ndarray:
    """Future paths of statsmodels' Holt-Winters recursion (additive trend and season) driven
    by normal one-step errors, from zero states: their spread is the forecast error's."""
    rng = np.random.default_rng(0)
    paths = 20_000
    level, trend = np.zeros(paths), np.zeros(paths)
    season = np.zeros((m, paths))
    out = np.empty((h, paths))
    for t in range(h):
        s = season[t % m].copy()
        y = level + phi * trend + s + rng.normal(0, sigma, paths)
        new_level = alpha * (y - s) + (1 - alpha) * (level + phi * trend)
        season[t % m] = gamma * (y - level - phi * trend) + (1 - gamma) * s
        trend = beta * (new_level - level) + (1 - beta) * phi * trend
        level = new_level
        out[t] = y
    return out


@pytest.mark.parametrize("damped", [False, True])
def test_holt_winters_intervals_match_the_spread_of_its_own_recursion(damped: bool) -> None:
    """The analytic h-step sd against Monte Carlo paths of the smoothing equations, with
    smoothing weights that tell alpha * beta from beta apart."""
    spec = forecast_spec(candidates={"ets": {"damped_trend": damped}})
    model = families.forecaster(spec, "ets").fit(seasonal_series(200))
    alpha, beta, gamma, phi = 0.3, 0.5, 0.2, (0.9 if damped else 1.0)
    fixed = {"smoothing_level": alpha, "smoothing_trend": beta, "smoothing_seasonal": gamma}
    model.result = model.result.model.fit(
        **fixed, **({"damping_trend": phi} if damped else {}), optimized=False
    )
    fc = model.forecast(24)
    sd = (fc.upper - fc.mean) / model.z
    paths = _holt_winters_paths(alpha, beta, gamma, phi, 8, sd[0], 24)
    np.testing.assert_allclose(sd, paths.std(axis=1), rtol=0.04)
    assert sd[-1] > 1.5 * sd[0]


def test_sarimax_season_follows_the_calendar_year_of_a_weekly_series() -> None:
    """30 years of weeks with a yearly cycle: Fourier terms of a whole 52-week 'year' drift
    six weeks off the calendar and miss the last year's peaks; calendar terms do not."""
    k = np.arange(30 * 52 + 26)
    y = 300 + 0.03 * k + 3 * np.sin(2 * np.pi * k / (365.2425 / 7))
    series = frame_of(y + np.random.default_rng(1).normal(0, 0.1, len(k)))
    history, holdout = series.head(len(k) - 52), series.tail(52)
    spec = forecast_spec(seasonal_period=52, horizon=52)
    model = families.forecaster(spec, "sarimax").fit(history)
    error = np.abs(model.forecast(52, holdout).mean - holdout["y"].to_numpy())
    assert float(np.mean(error)) < 0.3, float(np.mean(error))
