"""The synthetic churn stream: deterministic, realistic columns, drift when asked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from ml_assets.lib.churn import ChurnStream


def test_same_settings_same_rows_and_days_differ() -> None:
    stream = ChurnStream(customers_per_day=200)
    assert stream.generate(3).equals(stream.generate(3))
    assert not stream.generate(3).equals(stream.generate(4))
    assert stream.generate(3)["snapshot_date"].unique().to_list() == [dt.date(2026, 1, 4)]


def test_columns_missing_values_and_label_rate() -> None:
    day = ChurnStream(customers_per_day=2000).generate(0)
    assert day.columns == [
        "customer_id",
        "snapshot_date",
        "tenure_months",
        "plan",
        "monthly_charges",
        "usage_hours",
        "support_contacts",
        "billing",
        "region",
        "churned",
    ]
    assert 0.01 < day["usage_hours"].null_count() / day.height < 0.06
    assert set(day["plan"].unique()) == {"basic", "standard", "premium"}
    assert 0.03 < day["churned"].mean() < 0.2


def test_drift_shifts_features_and_the_label() -> None:
    stream = ChurnStream(customers_per_day=3000, drift_day=10)
    before, after = stream.generate(9), stream.generate(10)
    assert after["usage_hours"].mean() < 0.8 * before["usage_hours"].mean()
    assert after["support_contacts"].mean() > 1.5 * before["support_contacts"].mean()
    south = after.group_by(pl.col("region") == "south").agg(pl.col("churned").mean())
    rates = dict(zip(south["region"].to_list(), south["churned"].to_list(), strict=True))
    assert rates[True] > rates[False] + 0.1  # region matters only after the drift
    assert not ChurnStream(drift_day=None).drifted(500)


def test_write_one_file_per_day(tmp_path: Path) -> None:
    paths = ChurnStream(customers_per_day=50).write(tmp_path / "raw", range(3))
    assert [p.name for p in paths] == [
        "2026-01-01.parquet",
        "2026-01-02.parquet",
        "2026-01-03.parquet",
    ]
    assert pl.read_parquet(paths[1]).height == 50
