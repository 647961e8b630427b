"""Forecasting end to end: the built-in co2 spec on real data and a user's CSV spec."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from ml_assets.definitions import build_definitions
from ml_assets_tests.helpers import check_results, materialized, mlflow_client, run_job

USER_SPEC = """
name: shop_sales
task: forecasting
source: {path: sales.csv}
time_column: month
target: units
forecast: {frequency: 1mo, horizon: 6, seasonal_period: 12, folds: 2, imputation: linear}
candidates:
  sarimax: {fourier_terms: 2}
  lightgbm: {}
evaluation: {confidence: 0.9}
"""


def test_train_co2_backtests_gates_and_forecasts(home: Path) -> None:
    result = run_job(build_definitions(), "train_co2", dg.DagsterInstance.ephemeral())
    assert result.success
    assert {
        "co2/candidate_ets",
        "co2/candidate_sarimax",
        "co2/candidate_prophet",
        "co2/candidate_lightgbm",
        "co2/forecast",
    } <= materialized(result)
    checks = check_results(result)
    for name in ("time_index", "features_contract", "backtest_before_origin", "promotion_gate"):
        assert checks[name].passed, (name, checks[name].description)
    gate = str(checks["promotion_gate"].metadata["gate"].value)
    assert "Diebold-Mariano" in gate and "beats_seasonal_naive" in gate

    client = mlflow_client()
    champion = client.get_model_version_by_alias("co2", "champion")
    run = client.get_run(champion.run_id)
    assert run.data.metrics["test_mase"] < 1.0
    assert run.data.metrics["test_mase_ci_upper"] > run.data.metrics["test_mase"]
    report = Path(run.data.tags["report_path"]).read_text()
    for text in (
        "Backtest folds",
        "Holdout forecast",
        "Error by horizon step",
        "coverage",
        "holdout",
        "Diebold-Mariano",
    ):
        assert text in report
    assert report.count("data:image/png;base64,") == 3

    forecast = pl.read_parquet(home / "data" / "co2" / "forecast.parquet")
    assert forecast.height == 52
    assert forecast["date"].min() == dt.datetime(2002, 1, 5)  # the week after the data ends
    assert (forecast["lower"] < forecast["forecast"]).all()
    assert (forecast["forecast"] < forecast["upper"]).all()
    assert forecast["champion_version"].unique().to_list() == [str(champion.version)]


def _monthly_sales(months: int = 96, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(months)
    units = 200 + 1.5 * t + 25 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 4, months)
    dates = pl.date_range(
        dt.date(2015, 1, 1),
        dt.date(2015, 1, 1) + dt.timedelta(days=31 * months),
        interval="1mo",
        eager=True,
    ).head(months)
    return pl.DataFrame({"month": dates, "units": units})


def test_user_forecasting_spec_from_a_csv(home: Path, tmp_path: Path) -> None:
    _monthly_sales().write_csv(tmp_path / "sales.csv")
    (tmp_path / "shop_sales.yaml").write_text(USER_SPEC)
    result = run_job(
        build_definitions(str(tmp_path)), "train_shop_sales", dg.DagsterInstance.ephemeral()
    )
    assert result.success
    assert "shop_sales/forecast" in materialized(result)
    assert check_results(result)["promotion_gate"].passed
    forecast = pl.read_parquet(home / "data" / "shop_sales" / "forecast.parquet")
    assert forecast["month"].to_list()[:2] == [dt.date(2023, 1, 1), dt.date(2023, 2, 1)]
    assert forecast.height == 6
