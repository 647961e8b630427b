"""Bad time series fail with the spec, the column and the numbers, before any model fits."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from ml_assets.definitions import build_definitions
from ml_assets_tests.helpers import check_results, materialized, run_job, step_error_text

SPEC = """
name: weekly
task: forecasting
source: {{path: series.csv}}
time_column: week
target: y
forecast: {{frequency: {frequency}, horizon: {horizon}, seasonal_period: {period}, folds: 2}}
candidates: {{sarimax: {{}}}}
validation: {{min_rows: 10}}
"""


def _series(n: int = 120) -> pl.DataFrame:
    weeks = pl.datetime_range(
        dt.datetime(2020, 1, 4),
        dt.datetime(2020, 1, 4) + dt.timedelta(weeks=n - 1),
        interval="1w",
        eager=True,
    )
    return pl.DataFrame({"week": weeks, "y": np.arange(n, dtype=float)})


def _run(
    tmp_path: Path, frame: pl.DataFrame, frequency: str = "1w", horizon: int = 8, period: int = 4
) -> dg.ExecuteInProcessResult:
    frame.write_csv(tmp_path / "series.csv")
    (tmp_path / "weekly.yaml").write_text(
        SPEC.format(frequency=frequency, horizon=horizon, period=period)
    )
    return run_job(build_definitions(str(tmp_path)), "train_weekly", dg.DagsterInstance.ephemeral())


def test_duplicated_timestamps(home: Path, tmp_path: Path) -> None:
    frame = _series()
    result = _run(tmp_path, pl.concat([frame, frame.slice(10, 2)]).sort("week"))
    assert not result.success
    check = check_results(result)["time_index"]
    assert not check.passed and "2 duplicated timestamps in 'week'" in (check.description or "")
    assert materialized(result) == {"weekly/raw_data"}


def test_irregular_timestamps(home: Path, tmp_path: Path) -> None:
    frame = _series().with_columns(
        pl.when(pl.int_range(pl.len()) == 30)
        .then(pl.col("week") + dt.timedelta(days=2))
        .otherwise(pl.col("week"))
        .alias("week")
    )
    result = _run(tmp_path, frame)
    text = check_results(result)["time_index"].description or ""
    assert not result.success and "1 of 120 timestamps in 'week' are not on the '1w' grid" in text


def test_frequency_that_does_not_match_the_data(home: Path, tmp_path: Path) -> None:
    result = _run(tmp_path, _series(), frequency="1mo")
    text = check_results(result)["time_index"].description or ""
    assert not result.success
    assert "not on the '1mo' grid" in text and "most common spacing in the data is 7d" in text


@pytest.mark.parametrize(
    ("horizon", "period", "expected"),
    [
        (40, 4, "horizon 40 x (2 folds + 1 holdout) = 120 steps"),
        (8, 52, "2 seasonal periods of 52"),
    ],
)
def test_series_too_short(
    home: Path, tmp_path: Path, horizon: int, period: int, expected: str
) -> None:
    result = _run(tmp_path, _series(), horizon=horizon, period=period)
    assert not result.success
    text = step_error_text(result)
    assert "spec 'weekly'" in text and "'y'" in text and expected in text
    assert "weekly/splits" not in materialized(result)
