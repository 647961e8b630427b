"""Forecasters: the baselines by hand, the grid arithmetic, fit-returns-a-copy, backtest isolation
and the statsmodels / LightGBM candidates on a synthetic trend + season series."""

from __future__ import annotations

import datetime as dt
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats

from ml_assets.lib import families
from ml_assets.lib import forecasters as fc
from ml_assets.lib.forecast_eval import mase_scale
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.timeseries import backtest_folds
from ml_assets_tests.lib.conftest import forecast_spec

START = dt.datetime(2021, 1, 2)
Z95 = float(stats.norm.ppf(0.975))


def weekly_times(n: int, start: dt.datetime = START) -> pl.Series:
    return pl.datetime_range(start, start + dt.timedelta(weeks=n - 1), interval="1w", eager=True)


def frame_of(y: np.ndarray | list[float], start: dt.datetime = START) -> pl.DataFrame:
    return pl.DataFrame({"date": weekly_times(len(y), start), "y": np.asarray(y, dtype=float)})


def seasonal_series(n: int = 128, seed: int = 0) -> pl.DataFrame:
    """Trend 0.5 per week, an 8-week season of amplitude 10, noise sd 1."""
    k = np.arange(n)
    rng = np.random.default_rng(seed)
    y = 100 + 0.5 * k + 10 * np.sin(2 * np.pi * k / 8) + rng.normal(0, 1, n)
    return frame_of(y)


def baseline(spec: MLSpec, name: str) -> fc.Forecaster:
    return next(b for b in fc.baselines(spec) if b.name == name)


# --- baselines ----------------------------------------------------------------------------------


def test_baselines_are_the_four_named_ones() -> None:
    models = fc.baselines(forecast_spec())
    assert [m.name for m in models] == ["naive", "seasonal_naive", "drift", "mean"]
    assert all(m.role == "baseline" and m.task == "forecasting" for m in models)
    assert all(m.seasonal_period == 8 and m.frequency == "1w" for m in models)


def test_naive_repeats_the_last_value() -> None:
    y = np.array([5.0, 7.0, 6.0, 9.0, 8.0, 12.0])
    model = baseline(forecast_spec(), "naive").fit(frame_of(y))
    f = model.forecast(4)
    np.testing.assert_array_equal(f.mean, [12.0] * 4)
    sigma = np.std(np.diff(y), ddof=1)
    h = np.arange(1, 5)
    assert f.lower is not None and f.upper is not None
    np.testing.assert_allclose(f.upper - f.mean, Z95 * sigma * np.sqrt(h))
    np.testing.assert_allclose(f.mean - f.lower, Z95 * sigma * np.sqrt(h))


def test_naive_intervals_widen_with_the_horizon_and_contain_the_mean() -> None:
    model = baseline(forecast_spec(), "naive").fit(seasonal_series(40))
    f = model.forecast(12)
    assert f.lower is not None and f.upper is not None
    width = f.upper - f.lower
    assert np.all(np.diff(width) > 0)
    assert width[3] == pytest.approx(2 * width[0])  # sqrt(4) = 2
    assert np.all(f.lower < f.mean) and np.all(f.mean < f.upper)


def test_seasonal_naive_repeats_the_last_season() -> None:
    y = np.arange(20, dtype=float) ** 1.5
    model = baseline(forecast_spec(seasonal_period=4), "seasonal_naive").fit(frame_of(y))
    f = model.forecast(10)
    np.testing.assert_allclose(f.mean, np.tile(y[-4:], 3)[:10])
    assert f.lower is not None and f.upper is not None
    width = f.upper - f.lower
    # one season ahead: same width; the second season: sqrt(2) wider; the third: sqrt(3)
    np.testing.assert_allclose(width[:4], width[0])
    np.testing.assert_allclose(width[4:8], width[0] * np.sqrt(2))
    np.testing.assert_allclose(width[8:], width[0] * np.sqrt(3))


def test_drift_extrapolates_the_line_from_first_to_last() -> None:
    y = [1.0, 3.0, 4.0, 8.0, 9.0]  # slope (9 - 1) / 4 = 2
    f = baseline(forecast_spec(), "drift").fit(frame_of(y)).forecast(3)
    np.testing.assert_allclose(f.mean, [11.0, 13.0, 15.0])
    assert f.lower is not None and f.upper is not None
    assert np.all(np.diff(f.upper - f.lower) > 0)


def test_mean_forecaster() -> None:
    y = [1.0, 2.0, 3.0, 4.0, 10.0]
    f = baseline(forecast_spec(), "mean").fit(frame_of(y)).forecast(3)
    np.testing.assert_allclose(f.mean, [4.0, 4.0, 4.0])
    assert f.lower is not None and f.upper is not None
    half = Z95 * np.std(y, ddof=1) * np.sqrt(1 + 1 / 5)
    np.testing.assert_allclose(f.upper, 4.0 + half)
    np.testing.assert_allclose(f.lower, 4.0 - half)


# --- grid arithmetic ----------------------------------------------------------------------------


def test_steps_ahead_on_a_weekly_grid() -> None:
    last = dt.datetime(2021, 3, 6)
    week = dt.timedelta(weeks=1)
    times = pl.Series([last + week, last + 3 * week, last + 2 * week])
    np.testing.assert_array_equal(fc.steps_ahead(last, times, "1w"), [1, 3, 2])
    off = pl.Series([last + week, last + dt.timedelta(days=10)])
    with pytest.raises(ValueError, match="not on the '1w' grid after 2021-03-06"):
        fc.steps_ahead(last, off, "1w")


def test_steps_ahead_on_dates() -> None:
    last = dt.date(2021, 3, 6)
    times = pl.Series([dt.date(2021, 3, 13), dt.date(2021, 3, 27)])
    np.testing.assert_array_equal(fc.steps_ahead(last, times, "1w"), [1, 3])
    with pytest.raises(ValueError, match="not on the '1w' grid"):
        fc.steps_ahead(last, pl.Series([dt.date(2021, 3, 14)]), "1w")


def test_steps_ahead_on_an_integer_grid_rejects_off_grid_steps() -> None:
    np.testing.assert_array_equal(fc.steps_ahead(10, pl.Series([12, 16, 14]), "2"), [1, 3, 2])
    with pytest.raises(ValueError, match="not on the '2' grid"):
        fc.steps_ahead(10, pl.Series([12, 13]), "2")


def test_predict_equals_forecast_mean_at_the_requested_steps() -> None:
    model = baseline(forecast_spec(), "drift").fit(frame_of([1.0, 3.0, 4.0, 8.0, 9.0]))
    future = model.future_frame(5)
    frame = future.select(pl.all().gather([1, 4, 2]))  # steps 2, 5, 3
    mean = model.forecast(5).mean
    np.testing.assert_allclose(model.predict(frame), mean[[1, 4, 2]])
    np.testing.assert_allclose(model.predict(frame), [13.0, 19.0, 15.0])


def test_predict_rejects_a_timestamp_that_is_not_after_the_training_data() -> None:
    history = frame_of([1.0, 3.0, 4.0, 8.0, 9.0])
    model = baseline(forecast_spec(), "drift").fit(history)
    last = history["date"][-1]
    frame = pl.DataFrame({"date": [last, last + dt.timedelta(weeks=2)]})
    with pytest.raises(ValueError):
        model.predict(frame)  # step 0 is the last training week, not a forecast


def test_future_frame_gives_the_next_timestamps() -> None:
    history = frame_of([1.0, 2.0, 3.0])
    model = baseline(forecast_spec(), "naive").fit(history)
    last = history["date"][-1]
    out = model.future_frame(3)
    assert out.columns == ["date"]
    assert out["date"].to_list() == [last + dt.timedelta(weeks=i) for i in (1, 2, 3)]
    np.testing.assert_array_equal(fc.steps_ahead(model.last_time, out["date"], "1w"), [1, 2, 3])


def test_future_frame_on_month_ends_agrees_with_steps_ahead() -> None:
    spec = forecast_spec(frequency="1mo", seasonal_period=12)
    dates = pl.Series("date", [dt.date(2020, 11, 30), dt.date(2020, 12, 31), dt.date(2021, 1, 31)])
    model = baseline(spec, "naive").fit(pl.DataFrame({"date": dates, "y": [1.0, 2.0, 4.0]}))
    out = model.future_frame(3)["date"]
    assert out.to_list() == [dt.date(2021, 2, 28), dt.date(2021, 3, 31), dt.date(2021, 4, 30)]
    np.testing.assert_array_equal(fc.steps_ahead(model.last_time, out, "1mo"), [1, 2, 3])


def test_fit_returns_a_fitted_copy_and_leaves_the_model_reusable() -> None:
    model = baseline(forecast_spec(), "naive")
    first = model.fit(frame_of([1.0, 2.0, 3.0, 5.0]))
    second = model.fit(frame_of([10.0, 20.0, 30.0]))
    assert first is not model and second is not first
    assert model.last_time is None and model.n_train == 0
    with pytest.raises(ValueError, match="forecaster 'naive' is not fitted"):
        model.forecast(2)
    np.testing.assert_array_equal(first.forecast(2).mean, [5.0, 5.0])
    np.testing.assert_array_equal(second.forecast(2).mean, [30.0, 30.0])
    assert (first.n_train, second.n_train) == (4, 3)
    assert first.last_time == START + dt.timedelta(weeks=3)


# --- backtest isolation -------------------------------------------------------------------------


@dataclass
class RecordingForecaster(fc.Forecaster):
    """Records every history it is fitted on and every future it forecasts; the forecast mean is
    the number of training rows, so each fold's output shows which fit produced it."""

    log: list[tuple[str, pl.DataFrame]] = field(default_factory=list)  # shared by fitted copies

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        assert len(y) == history.height
        self.log.append(("fit", history.clone()))

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> fc.Forecast:
        assert future is not None
        self.log.append(("forecast", future.clone()))
        mean = np.full(horizon, float(self.n_train))
        return fc.Forecast(mean, mean - 1.0, mean + 1.0)


def recording(spec: MLSpec) -> RecordingForecaster:
    return RecordingForecaster(
        "recorder",
        "recorder",
        "baseline",
        "forecasting",
        ["date"],
        time_column="date",
        target="y",
        frequency="1w",
        seasonal_period=8,
    )


def test_backtest_fits_each_fold_only_before_its_origin() -> None:
    spec = forecast_spec()
    series = seasonal_series(60)
    folds = backtest_folds(spec, series.height)
    assert [f.origin for f in folds] == [44, 52]
    model = recording(spec)
    out = fc.backtest(model, series, folds)

    assert [kind for kind, _ in model.log] == ["fit", "forecast", "fit", "forecast"]
    for i, fold in enumerate(folds):
        history, future = model.log[2 * i][1], model.log[2 * i + 1][1]
        origin_time = series["date"][fold.origin]
        assert history.height == fold.origin
        assert history["date"].max() < origin_time
        assert history.equals(series.head(fold.origin))
        assert future["date"].to_list() == series["date"][fold.origin : fold.origin + 8].to_list()

    assert out.columns == [
        "model",
        "fold",
        "step",
        "time",
        "actual",
        "mean",
        "lower",
        "upper",
        "scale",
    ]
    assert out.height == 16
    assert out["model"].unique().to_list() == ["recorder"]
    assert out["fold"].to_list() == [0] * 8 + [1] * 8
    assert out["step"].to_list() == list(range(1, 9)) * 2
    assert out["time"].to_list() == series["date"][44:].to_list()
    np.testing.assert_array_equal(out["actual"].to_numpy(), series["y"][44:].to_numpy())
    np.testing.assert_array_equal(out["mean"].to_numpy(), [44.0] * 8 + [52.0] * 8)
    np.testing.assert_array_equal(out["lower"].to_numpy(), out["mean"].to_numpy() - 1)
    np.testing.assert_array_equal(out["upper"].to_numpy(), out["mean"].to_numpy() + 1)
    y = series["y"].to_numpy()
    assert out["scale"][0] == pytest.approx(mase_scale(y[:44], 8))
    assert out["scale"][8] == pytest.approx(mase_scale(y[:52], 8))
    assert model.last_time is None  # the model handed in was never fitted itself


def test_backtest_does_not_hand_future_actuals_to_forecast() -> None:
    spec = forecast_spec()
    series = seasonal_series(60)
    model = recording(spec)
    fc.backtest(model, series, backtest_folds(spec, series.height))
    futures = [frame for kind, frame in model.log if kind == "forecast"]
    assert len(futures) == 2
    for future in futures:
        # The rows to forecast may carry exogenous values, never the target being forecast.
        assert "y" not in future.columns or future["y"].null_count() == future.height


# --- statsmodels and LightGBM candidates --------------------------------------------------------

FAMILIES = ["sarimax", "ets", "lightgbm"]
HOLDOUT = 16


@pytest.fixture(scope="module")
def candidate_fits() -> dict[str, Any]:
    spec = forecast_spec()
    series = seasonal_series(128)
    history, holdout = series.head(128 - HOLDOUT), series.tail(HOLDOUT)
    fitted = {f: families.forecaster(spec, f).fit(history) for f in FAMILIES}
    fitted["naive"] = baseline(spec, "naive").fit(history)
    return {"spec": spec, "history": history, "holdout": holdout, "fitted": fitted}


def _mae(model: fc.Forecaster, holdout: pl.DataFrame) -> float:
    mean = model.forecast(holdout.height, holdout).mean
    return float(np.mean(np.abs(mean - holdout["y"].to_numpy())))


@pytest.mark.parametrize("family", FAMILIES)
def test_candidate_beats_naive_on_a_trend_and_season(
    candidate_fits: dict[str, Any], family: str
) -> None:
    holdout = candidate_fits["holdout"]
    model = candidate_fits["fitted"][family]
    assert model.name == family and model.role == "candidate"
    naive_mae = _mae(candidate_fits["fitted"]["naive"], holdout)
    mae = _mae(model, holdout)
    assert mae < naive_mae, (family, mae, naive_mae)
    mean = model.forecast(HOLDOUT, holdout).mean
    assert mean.shape == (HOLDOUT,) and np.all(np.isfinite(mean))


@pytest.mark.parametrize("family", ["sarimax", "ets"])
def test_statsmodels_intervals_contain_the_mean(
    candidate_fits: dict[str, Any], family: str
) -> None:
    f = candidate_fits["fitted"][family].forecast(HOLDOUT, candidate_fits["holdout"])
    assert f.lower is not None and f.upper is not None
    assert np.all(f.lower < f.mean) and np.all(f.mean < f.upper)
    if family == "sarimax":
        assert (f.upper - f.lower)[-1] > (f.upper - f.lower)[0]


def test_lightgbm_forecaster_is_deterministic(candidate_fits: dict[str, Any]) -> None:
    spec, history = candidate_fits["spec"], candidate_fits["history"]
    first = candidate_fits["fitted"]["lightgbm"].forecast(HOLDOUT).mean
    again = families.forecaster(spec, "lightgbm").fit(history).forecast(HOLDOUT).mean
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, first[0])  # not a constant forecast


def test_lightgbm_candidate_settings_follow_the_season() -> None:
    model = families.forecaster(forecast_spec(), "lightgbm")
    assert isinstance(model, fc.LightGBMForecaster)
    assert model.lags == [1, 2, 3, 8]
    assert model.windows == [4, 8]
    assert model.rounds == 300
    assert model.lgb_params["seed"] == 42 and model.lgb_params["deterministic"] is True


@pytest.mark.parametrize("name", [*FAMILIES, "naive"])
def test_fitted_forecasters_survive_pickling(candidate_fits: dict[str, Any], name: str) -> None:
    model = candidate_fits["fitted"][name]
    holdout = candidate_fits["holdout"]
    restored = pickle.loads(pickle.dumps(model))
    assert type(restored) is type(model)
    assert restored.last_time == model.last_time and restored.n_train == model.n_train
    np.testing.assert_allclose(
        restored.forecast(HOLDOUT, holdout).mean, model.forecast(HOLDOUT, holdout).mean
    )
