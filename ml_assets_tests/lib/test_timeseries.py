"""Time-series data: the time index report, regularisation and imputation, backtest folds, the
forecast splits and their proof of order, lag features and the look-ahead guard."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from ml_assets.lib.data import SPLIT, DataError
from ml_assets.lib.timeseries import (
    IMPUTED,
    LagFeatures,
    LeakageError,
    assert_no_lookahead,
    assign_forecast_splits,
    backtest_folds,
    check_folds_before_origin,
    inspect_time_index,
    lag_features,
    regularize,
)
from ml_assets_tests.lib.conftest import forecast_spec

START = dt.datetime(2021, 1, 2)


def weekly(n: int = 60, seed: int = 0) -> pl.DataFrame:
    """``n`` weekly rows from START with a trend, an 8-week season and a little noise."""
    t = pl.datetime_range(START, START + dt.timedelta(weeks=n - 1), interval="1w", eager=True)
    k = np.arange(n)
    rng = np.random.default_rng(seed)
    y = 50 + 0.5 * k + 5 * np.sin(2 * np.pi * k / 8) + rng.normal(0, 0.5, n)
    return pl.DataFrame({"date": t, "y": y})


def with_nulls(frame: pl.DataFrame, rows: list[int]) -> pl.DataFrame:
    idx = pl.int_range(pl.len())
    return frame.with_columns(pl.when(idx.is_in(rows)).then(None).otherwise(pl.col("y")).alias("y"))


def without_rows(frame: pl.DataFrame, rows: list[int]) -> pl.DataFrame:
    return frame.filter(~pl.int_range(pl.len()).is_in(rows))


# --- inspect_time_index and TimeIndexReport.problems -------------------------------------------


def test_clean_weekly_series_has_no_problems() -> None:
    spec = forecast_spec()
    report = inspect_time_index(spec, weekly())
    assert report.rows == 60
    assert report.duplicates == 0 and report.duplicate_examples == []
    assert report.monotonic is True
    assert report.off_grid == 0 and report.off_grid_examples == []
    assert report.common_step == "7d"
    assert (report.missing_steps, report.target_nulls, report.expected_steps) == (0, 0, 60)
    assert report.gap_fraction == 0.0
    assert report.problems(spec) == []


def test_duplicated_timestamps_are_counted_with_examples() -> None:
    spec = forecast_spec()
    frame = weekly()
    dup = pl.concat([frame, frame[5], frame[9]]).sort("date")
    report = inspect_time_index(spec, dup)
    assert report.rows == 62
    assert report.duplicates == 2
    assert sorted(report.duplicate_examples) == sorted(
        [str(frame["date"][5]), str(frame["date"][9])]
    )
    assert report.monotonic is True  # sorted, only repeated
    problems = report.problems(spec)
    assert len(problems) == 1
    assert problems[0].startswith("2 duplicated timestamps in 'date', e.g. ")
    assert str(frame["date"][5]) in problems[0] and str(frame["date"][9]) in problems[0]
    assert problems[0].endswith("keep one row per timestamp")


def test_unsorted_series_is_reported_as_not_increasing() -> None:
    spec = forecast_spec()
    frame = weekly()
    order = list(range(60))
    order[10], order[11] = 11, 10
    swapped = frame.select(pl.all().gather(order))
    report = inspect_time_index(spec, swapped)
    assert report.monotonic is False
    assert report.duplicates == 0 and report.off_grid == 0 and report.missing_steps == 0
    assert report.problems(spec) == ["'date' is not in increasing order; sort the data by time"]


def test_monthly_frequency_on_weekly_data_reports_off_grid_and_the_spacing() -> None:
    spec = forecast_spec(frequency="1mo")
    frame = weekly()
    times = frame["date"].to_list()
    # The monthly grid from 2021-01-02 is the 2nd of every month.
    off = [t for t in times if t.day != 2]
    report = inspect_time_index(spec, frame)
    assert report.off_grid == len(off)
    assert report.off_grid_examples == [str(t) for t in off[:3]]
    assert report.common_step == "7d"
    problems = report.problems(spec)
    assert problems == [
        f"{len(off)} of 60 timestamps in 'date' are not on the '1mo' grid starting at the first "
        f"timestamp (e.g. {[str(t) for t in off[:3]]}); the most common spacing in the data is "
        "7d: fix 'forecast.frequency' or the data"
    ]


def test_daily_frequency_on_weekly_data_names_the_weekly_spacing() -> None:
    spec = forecast_spec(frequency="1d")
    report = inspect_time_index(spec, weekly())
    assert report.common_step == "7d"
    # Every weekly timestamp lies on the daily grid: six of every seven days are missing.
    assert report.off_grid == 0
    assert report.expected_steps == 59 * 7 + 1
    assert report.missing_steps == 59 * 7 + 1 - 60
    problems = report.problems(spec)
    assert problems, "a '1d' declaration on weekly data must be reported"
    # The author must learn that the data is weekly, not that 85% of it is missing.
    assert any("7d" in p for p in problems), problems


def test_missing_steps_and_null_targets_are_counted_as_gaps() -> None:
    spec = forecast_spec(max_gap_fraction=0.1)
    frame = with_nulls(weekly(), [20])
    frame = without_rows(frame, [10, 11])
    report = inspect_time_index(spec, frame)
    assert report.rows == 58
    assert report.missing_steps == 2
    assert report.target_nulls == 1
    assert report.expected_steps == 60
    assert report.gap_fraction == pytest.approx(3 / 60)
    assert report.off_grid == 0
    assert report.problems(spec) == []  # 5% gaps, imputed linearly, under the 10% allowed


def test_gap_fraction_over_the_maximum_is_a_problem() -> None:
    spec = forecast_spec(max_gap_fraction=0.02)
    frame = without_rows(with_nulls(weekly(), [20]), [10, 11])
    report = inspect_time_index(spec, frame)
    assert report.problems(spec) == [
        "2 missing timestamps and 1 null 'y' values make 5.0% of 60 steps gaps, over "
        "forecast.max_gap_fraction 2.0%"
    ]


def test_gaps_without_imputation_are_a_problem() -> None:
    spec = forecast_spec(imputation="none", max_gap_fraction=0.5)
    frame = without_rows(with_nulls(weekly(), [20]), [10, 11])
    assert inspect_time_index(spec, frame).problems(spec) == [
        "3 gaps in 'y' and forecast.imputation is 'none'; declare 'linear' or 'forward_fill'"
    ]
    # The same series without gaps needs no imputation.
    assert inspect_time_index(spec, weekly()).problems(spec) == []


# --- regularize ---------------------------------------------------------------------------------


def test_regularize_inserts_missing_rows_and_imputes_linearly() -> None:
    spec = forecast_spec()
    full = weekly()
    y = full["y"].to_numpy()
    frame = with_nulls(without_rows(full, [10]), [19])  # row 19 of the gapped frame is week 20
    out = regularize(spec, frame.reverse())  # also sorts
    assert out.height == 60
    assert out["date"].to_list() == full["date"].to_list()
    assert out["date"].dtype == full["date"].dtype
    assert out[IMPUTED].to_list() == [i in (10, 20) for i in range(60)]
    assert out["y"].null_count() == 0
    assert out["y"][10] == pytest.approx((y[9] + y[11]) / 2)
    assert out["y"][20] == pytest.approx((y[19] + y[21]) / 2)
    untouched = [i for i in range(60) if i not in (10, 20)]
    np.testing.assert_allclose(out["y"].to_numpy()[untouched], y[untouched])


def test_regularize_forward_fill_copies_the_previous_value() -> None:
    spec = forecast_spec(imputation="forward_fill")
    full = weekly()
    y = full["y"].to_numpy()
    out = regularize(spec, without_rows(full, [10, 11]))
    assert out.height == 60
    assert out[IMPUTED].sum() == 2
    assert out["y"][10] == y[9] and out["y"][11] == y[9]
    assert out["y"][12] == y[12]


def test_regularize_on_a_date_column() -> None:
    spec = forecast_spec()
    dates = pl.date_range(
        dt.date(2022, 1, 3), dt.date(2022, 1, 3) + dt.timedelta(weeks=5), "1w", eager=True
    )
    frame = pl.DataFrame({"date": dates, "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    out = regularize(spec, without_rows(frame, [2]))
    assert out["date"].dtype == pl.Date
    assert out["date"].to_list() == dates.to_list()
    assert out["y"].to_list() == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert out[IMPUTED].to_list() == [False, False, True, False, False, False]


# --- backtest folds and forecast splits ---------------------------------------------------------


def test_backtest_folds_origins_and_rows() -> None:
    spec = forecast_spec()  # horizon 8, 2 folds
    folds = backtest_folds(spec, 100)
    assert [f.index for f in folds] == [0, 1]
    assert [f.origin for f in folds] == [84, 92]
    assert [list(f.test_rows) for f in folds] == [list(range(84, 92)), list(range(92, 100))]
    assert all(len(f.test_rows) == 8 for f in folds)
    assert folds[-1].test_rows.stop == 100

    three = backtest_folds(forecast_spec(horizon=5, folds=3, seasonal_period=4), 50)
    assert [f.origin for f in three] == [35, 40, 45]
    assert three[-1].test_rows.stop == 50


def test_backtest_folds_horizon_too_long_for_the_requested_folds() -> None:
    spec = forecast_spec(horizon=30, folds=3, seasonal_period=4)
    # 100 rows: first origin 100 - 90 = 10, exactly the minimum training length.
    assert [f.origin for f in backtest_folds(spec, 100)] == [10, 40, 70]
    with pytest.raises(DataError) as err:
        backtest_folds(spec, 99)
    msg = str(err.value)
    assert "spec 'toy_fc': 129 steps of 'y' are too few" in msg
    assert "horizon 30 x (3 folds + 1 holdout) = 120 steps" in msg
    assert "at least 10 training steps (2 seasonal periods of 4)" in msg
    assert "lower 'forecast.horizon' or 'forecast.folds'" in msg


def test_backtest_folds_too_short_for_the_seasonal_period() -> None:
    spec = forecast_spec(horizon=4, folds=2, seasonal_period=52)
    assert [f.origin for f in backtest_folds(spec, 112)] == [104, 108]
    with pytest.raises(DataError) as err:
        backtest_folds(spec, 100)
    msg = str(err.value)
    assert "104 steps of 'y' are too few for horizon 4 x (2 folds + 1 holdout) = 12 steps" in msg
    assert "at least 104 training steps (2 seasonal periods of 52)" in msg


def test_assign_forecast_splits_holds_out_the_last_horizon() -> None:
    spec = forecast_spec()
    frame = weekly()
    out = assign_forecast_splits(spec, frame)
    assert out[SPLIT].to_list() == ["train"] * 52 + ["test"] * 8
    test = out.filter(pl.col(SPLIT) == "test")
    assert test["date"].to_list() == frame["date"].tail(8).to_list()
    with pytest.raises(DataError, match="horizon 8 x \\(2 folds \\+ 1 holdout\\)"):
        assign_forecast_splits(spec, weekly(30))


def test_check_folds_before_origin_passes_on_a_proper_split() -> None:
    spec = forecast_spec()
    frame = weekly()
    t = frame["date"]
    ok, detail, meta = check_folds_before_origin(spec, assign_forecast_splits(spec, frame))
    assert ok is True
    assert detail == "every fold and the holdout train only on earlier data"
    # 52 training rows: folds at 36 and 44.
    assert meta == {
        "fold_0": f"train to {t[35]}, forecast {t[36]} +8",
        "fold_1": f"train to {t[43]}, forecast {t[44]} +8",
    }


def test_check_folds_before_origin_fails_when_train_reaches_past_the_holdout() -> None:
    spec = forecast_spec()
    frame = weekly()
    t = frame["date"]
    splits = assign_forecast_splits(spec, frame)
    last_is_train = splits.with_columns(
        pl.when(pl.int_range(pl.len()) == 59)
        .then(pl.lit("train"))
        .otherwise(pl.col(SPLIT))
        .alias(SPLIT)
    )
    ok, detail, _ = check_folds_before_origin(spec, last_is_train)
    assert ok is False
    assert f"training data reaches {t[59]} >= holdout {t[52]}" in detail

    # Holdout at the start, training on the later rows.
    flipped = splits.with_columns(pl.Series(SPLIT, ["test"] * 8 + ["train"] * 52))
    ok, detail, _ = check_folds_before_origin(spec, flipped)
    assert ok is False
    assert f"training data reaches {t[59]} >= holdout {t[0]}" in detail


# --- lag features and the look-ahead guard ------------------------------------------------------


def _guard_series() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.normal(size=120)) + 10
    return y, (np.arange(120) % 8).astype(float)


def test_lag_features_pass_the_lookahead_guard() -> None:
    y, periods = _guard_series()
    assert_no_lookahead(lag_features([1, 2], [3]), y, periods)  # no exception


def test_builder_peeking_one_step_ahead_raises_leakage_error() -> None:
    def peeks(y: np.ndarray, periods: np.ndarray) -> np.ndarray:
        ahead = np.full(len(y), np.nan)
        ahead[:-1] = y[1:]  # row t sees y[t+1]
        return np.column_stack([lag_features([1], [])(y, periods), ahead])

    y, periods = _guard_series()
    # columns: lag 1, season position, y[t+1]
    with pytest.raises(LeakageError, match=r"feature column\(s\) \[2\] at row 60 change"):
        assert_no_lookahead(peeks, y, periods)


def test_builder_using_the_current_value_raises_leakage_error() -> None:
    def uses_now(y: np.ndarray, periods: np.ndarray) -> np.ndarray:
        return np.column_stack([periods, y])  # row t sees y[t], the value it forecasts

    y, periods = _guard_series()
    with pytest.raises(LeakageError, match=r"feature column\(s\) \[1\] at row 60") as err:
        assert_no_lookahead(uses_now, y, periods)
    assert "looks ahead of the forecast origin" in str(err.value)


def test_lag_feature_values_by_hand() -> None:
    y = np.array([1.0, 2.0, 4.0, 7.0, 11.0, 16.0])
    periods = np.array([0, 1, 2, 0, 1, 2])
    x = LagFeatures((1, 2), (2, 3))(y, periods)
    nan = np.nan
    expected = np.array(
        [
            # lag1 lag2  mean(y[t-2:t])  mean(y[t-3:t])  position
            [nan, nan, nan, nan, 0.0],
            [1.0, nan, nan, nan, 1.0],
            [2.0, 1.0, 1.5, nan, 2.0],
            [4.0, 2.0, 3.0, 7 / 3, 0.0],
            [7.0, 4.0, 5.5, 13 / 3, 1.0],
            [11.0, 7.0, 9.0, 22 / 3, 2.0],
        ]
    )
    assert x.shape == (6, 5)
    np.testing.assert_allclose(x, expected, equal_nan=True)
    assert isinstance(lag_features([1, 2], [2, 3]), LagFeatures)
    np.testing.assert_allclose(lag_features([1, 2], [2, 3])(y, periods), expected, equal_nan=True)


def test_a_yearly_season_follows_the_calendar_not_a_whole_number_of_steps() -> None:
    from ml_assets.lib.timeseries import seasonal_cycle

    assert seasonal_cycle("1w", 52) == pytest.approx(365.2425 / 7)
    assert seasonal_cycle("1d", 365) == pytest.approx(365.2425)
    assert seasonal_cycle("2w", 26) == pytest.approx(365.2425 / 14)
    # Not a year: as declared.
    assert seasonal_cycle("1d", 7) == 7.0 and seasonal_cycle("1h", 24) == 24.0
    assert seasonal_cycle("1mo", 12) == 12.0 and seasonal_cycle("1", 4) == 4.0
