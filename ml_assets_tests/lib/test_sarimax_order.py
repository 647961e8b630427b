"""SARIMAX `order: auto`: d from a KPSS test, p and q by AIC, searched again at every fit on
the history it is given."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from ml_assets.lib import families
from ml_assets.lib.forecasters import SARIMAXForecaster
from ml_assets.lib.timeseries import differences_needed
from ml_assets_tests.lib.conftest import forecast_spec
from ml_assets_tests.lib.test_forecasters import frame_of


def _ar2(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    for t in range(2, n):
        y[t] = 0.6 * y[t - 1] - 0.3 * y[t - 2] + rng.normal()
    return 50 + y


def _random_walk(n: int, seed: int) -> np.ndarray:
    return 50 + np.cumsum(np.random.default_rng(seed).normal(size=n))


def test_one_difference_for_a_random_walk_none_for_a_stationary_series() -> None:
    assert differences_needed(_random_walk(300, 1), None) == 1
    assert differences_needed(_ar2(300, 2), None) == 0


def test_auto_order_is_the_aic_best_of_the_grid_and_is_recorded() -> None:
    spec = forecast_spec(candidates={"sarimax": {"order": "auto", "max_order": 1}})
    template = families.forecaster(spec, "sarimax")
    assert isinstance(template, SARIMAXForecaster) and template.search_order
    y = _ar2(240, 3)
    fitted = template.fit(frame_of(y))
    assert isinstance(fitted, SARIMAXForecaster)
    p, d, q = fitted.order
    assert d == 0 and fitted.params["order_selected"] == [p, d, q]
    exog = fitted._exog(np.arange(len(y)), None)
    aic = {
        (a, 0, b): sm.tsa.SARIMAX(y, exog=exog, order=(a, 0, b), trend="c")
        .fit(disp=False, maxiter=200)
        .aic
        for a in (0, 1)
        for b in (0, 1)
    }
    assert fitted.result.aic == pytest.approx(min(aic.values()))
    assert np.isfinite(fitted.forecast(8).mean).all()
    # A fit on another history searches again: a random walk gets its difference.
    walk = fitted.fit(frame_of(_random_walk(240, 4)))
    assert walk.order[1] == 1 and walk.params["order_selected"][1] == 1


def test_a_fixed_order_is_not_searched() -> None:
    spec = forecast_spec(candidates={"sarimax": {"order": [1, 0, 0]}})
    fitted = families.forecaster(spec, "sarimax").fit(frame_of(_ar2(120, 5)))
    assert fitted.order == (1, 0, 0) and "order_selected" not in fitted.params
