"""Forecasting library: time index contract, grid and imputation, folds, baselines, backtest
isolation, losses, Newey-West and Diebold-Mariano."""

from __future__ import annotations

import datetime as dt
import pickle
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pytest

from ml_assets.lib import families
from ml_assets.lib import forecast_eval as fe
from ml_assets.lib import forecasters as fc
from ml_assets.lib.data import SPLIT, DataError
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.timeseries import (
    IMPUTED,
    assign_forecast_splits,
    backtest_folds,
    check_folds_before_origin,
    inspect_time_index,
    regularize,
)


def _spec(**forecast: object) -> MLSpec:
    cfg = {"frequency": "1w", "horizon": 4, "seasonal_period": 4, "folds": 2, **forecast}
    return MLSpec.model_validate(
        {
            "name": "toy",
            "task": "forecasting",
            "source": {"statsmodels": "co2"},
            "time_column": "t",
            "target": "y",
            "forecast": cfg,
            "candidates": {"sarimax": {}},
        }
    )


def _weekly(n: int = 60, seed: int = 0) -> pl.DataFrame:
    start = dt.datetime(2021, 1, 2)
    t = pl.datetime_range(start, start + dt.timedelta(weeks=n - 1), interval="1w", eager=True)
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    y = 50 + 0.5 * k + 5 * np.sin(2 * np.pi * k / 4) + rng.normal(0, 0.5, n)
    return pl.DataFrame({"t": t, "y": y})


def test_clean_series_has_no_time_index_problems() -> None:
    spec = _spec()
    report = inspect_time_index(spec, _weekly())
    assert report.problems(spec) == []
    assert (report.missing_steps, report.off_grid, report.duplicates) == (0, 0, 0)


def test_gaps_are_counted_and_need_an_imputation() -> None:
    spec = _spec(max_gap_fraction=0.5)
    frame = _weekly().filter(pl.int_range(pl.len()) != 10)
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 20).then(None).otherwise(pl.col("y")).alias("y")
    )
    report = inspect_time_index(spec, frame)
    assert (report.missing_steps, report.target_nulls) == (1, 1)
    assert report.problems(spec) == [
        "2 gaps in 'y' and forecast.imputation is 'none'; declare 'linear' or 'forward_fill'"
    ]
    tight = _spec(max_gap_fraction=0.01, imputation="linear")
    assert (
        "over forecast.max_gap_fraction 1.0%" in inspect_time_index(tight, frame).problems(tight)[0]
    )


def test_unsorted_series_is_reported() -> None:
    spec = _spec()
    problems = inspect_time_index(spec, _weekly().reverse()).problems(spec)
    assert problems == ["'t' is not in increasing order; sort the data by time"]


def test_regularize_inserts_flags_and_imputes() -> None:
    frame = _weekly(12).filter(pl.int_range(pl.len()) != 5)
    linear = regularize(_spec(imputation="linear"), frame)
    assert linear.height == 12 and linear[IMPUTED].to_list().count(True) == 1
    original = _weekly(12)["y"]
    assert linear["y"][5] == pytest.approx((original[4] + original[6]) / 2)
    ffill = regularize(_spec(imputation="forward_fill"), frame)
    assert ffill["y"][5] == pytest.approx(original[4])


def test_folds_end_at_the_holdout_and_short_series_fail_with_numbers() -> None:
    spec = _spec()
    folds = backtest_folds(spec, 56)
    assert [(f.origin, list(f.test_rows)[-1]) for f in folds] == [(48, 51), (52, 55)]
    with pytest.raises(DataError, match=r"horizon 4 x \(2 folds \+ 1 holdout\) = 12 steps"):
        backtest_folds(spec, 10)


def test_fold_check_passes_and_catches_training_past_the_holdout() -> None:
    spec = _spec()
    splits = assign_forecast_splits(spec, _weekly())
    assert splits[SPLIT].tail(4).to_list() == ["test"] * 4
    ok, detail, meta = check_folds_before_origin(spec, splits)
    assert ok and len(meta) == 2
    broken = splits.with_columns(
        pl.when(pl.int_range(pl.len()) == 57)
        .then(pl.lit("train"))
        .otherwise(pl.col(SPLIT))
        .alias(SPLIT)
    )
    ok, detail, _ = check_folds_before_origin(spec, broken)
    assert not ok and "training data reaches" in detail


def _fitted(model: fc.Forecaster, frame: pl.DataFrame) -> fc.Forecaster:
    return model.fit(frame)


def test_baselines_by_hand() -> None:
    spec = _spec()
    frame = pl.DataFrame({"t": _weekly(8)["t"], "y": [1.0, 2, 3, 4, 5, 6, 7, 8]})
    naive, seasonal, drift, mean = (_fitted(m, frame) for m in fc.baselines(spec))
    assert naive.forecast(3).mean.tolist() == [8.0, 8.0, 8.0]
    assert seasonal.forecast(5).mean.tolist() == [5.0, 6.0, 7.0, 8.0, 5.0]
    assert drift.forecast(2).mean.tolist() == pytest.approx([9.0, 10.0])
    assert mean.forecast(1).mean.tolist() == [4.5]
    noisy = fc.baselines(spec)[0].fit(_weekly(20))
    widths = noisy.forecast(3).upper - noisy.forecast(3).lower
    assert widths[0] < widths[1] < widths[2]


def test_predict_on_future_timestamps_and_future_frame() -> None:
    model = fc.baselines(_spec())[2].fit(_weekly(20))  # drift
    future = model.future_frame(3)
    assert future["t"][0] == _weekly(21)["t"][20]
    assert model.predict(future.tail(1)).tolist() == pytest.approx(
        model.forecast(3).mean[2:].tolist()
    )
    with pytest.raises(ValueError, match="not on the '1w' grid"):
        fc.steps_ahead(model.last_time, pl.Series([model.last_time + dt.timedelta(days=3)]), "1w")


@dataclass
class _Recorder(fc.Forecaster):
    seen: list[object] = field(default_factory=list)

    def _fit(self, y: np.ndarray, history: pl.DataFrame) -> None:
        self.seen.append(history[self.time_column].max())

    def _forecast(self, horizon: int, future: pl.DataFrame | None) -> fc.Forecast:
        return fc.Forecast(np.zeros(horizon))


def test_backtest_fits_each_fold_only_on_rows_before_its_origin() -> None:
    spec = _spec()
    series = _weekly(56)
    recorder = _Recorder("rec", "rec", **fc._common(spec, "candidate"))
    frame = fc.backtest(recorder, series, backtest_folds(spec, series.height))
    assert recorder.seen == [series["t"][47], series["t"][51]]
    fold0 = frame.filter(pl.col("fold") == 0)
    assert fold0["time"].min() == series["t"][48] and fold0.height == 4
    assert frame.columns == [
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


@pytest.mark.parametrize("family", ["ets", "sarimax", "lightgbm"])
def test_candidates_beat_naive_and_pickle(family: str) -> None:
    spec = _spec(seasonal_period=4)
    series = _weekly(120, seed=1)
    history, holdout = series.head(112), series.tail(8)
    model = families.forecaster(spec, family).fit(history)
    naive = fc.baselines(spec)[0].fit(history)
    y = holdout["y"].to_numpy()
    mae = np.abs(model.forecast(8, holdout).mean - y).mean()
    assert mae < np.abs(naive.forecast(8).mean - y).mean()
    assert pickle.loads(pickle.dumps(model)).forecast(8, holdout).mean == pytest.approx(
        model.forecast(8, holdout).mean
    )


def test_lightgbm_forecaster_is_deterministic() -> None:
    spec, series = _spec(), _weekly(80, seed=2)
    first = families.forecaster(spec, "lightgbm").fit(series).forecast(6).mean
    again = families.forecaster(spec, "lightgbm").fit(series).forecast(6).mean
    assert first.tolist() == again.tolist()


def test_losses_scale_and_metric_values() -> None:
    y, yhat = np.array([10.0, 20.0]), np.array([12.0, 15.0])
    assert fe.mase_scale(np.array([1.0, 2.0, 4.0, 7.0]), 1) == pytest.approx(2.0)
    assert fe.step_losses("mae", y, yhat, 1).tolist() == [2.0, 5.0]
    assert fe.step_losses("rmse", y, yhat, 1).tolist() == [4.0, 25.0]
    assert fe.step_losses("mase", y, yhat, 2.0).tolist() == [1.0, 2.5]
    assert fe.step_losses("smape", y, yhat, 1)[0] == pytest.approx(200 * 2 / 22)
    assert fe.step_losses("mape", y, yhat, 1).tolist() == pytest.approx([20.0, 25.0])
    est = fe.metric_estimate("rmse", y, yhat, 1.0, 0.95)
    assert est.value == pytest.approx(np.sqrt(14.5)) and est.lower <= est.value <= est.upper


def test_newey_west_grows_with_autocorrelation() -> None:
    rng = np.random.default_rng(4)
    white = rng.normal(size=400)
    assert fe.newey_west_se(white) == pytest.approx(white.std() / np.sqrt(400), rel=0.2)
    walk_like = np.convolve(rng.normal(size=420), np.ones(20) / 20, mode="valid")[:400]
    assert fe.newey_west_se(walk_like) > 2 * walk_like.std() / np.sqrt(400)


def test_diebold_mariano_orientation() -> None:
    rng = np.random.default_rng(5)
    ref = np.abs(rng.normal(2, 0.5, 52))
    better = fe.diebold_mariano(ref * 0.5, ref, 0.95)
    assert better.improvement.lower > 0 and better.p_value < 0.01
    same = fe.diebold_mariano(ref, ref, 0.95)
    assert same.improvement.value == 0.0
