"""Batch scoring of daily files with the champion read through the registry alias."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from ml_assets.definitions import build_definitions
from ml_assets.defs.simulation import stage_metadata
from ml_assets.lib.churn import ChurnStream
from ml_assets_tests.helpers import mlflow_client, run_job, step_error_text

SPEC = """
name: shop_churn
task: classification
source: {path: history.parquet}
target: churned
drop: [customer_id, snapshot_date]
candidates: {lightgbm: {budget: 2}}
validation: {min_rows: 100}
evaluation: {bootstrap_samples: 200}
monitoring: {start_date: 2026-01-01}
"""


def test_daily_partition_is_scored_by_the_champion(home: Path, tmp_path: Path) -> None:
    stream = ChurnStream(customers_per_day=600)
    pl.concat([stream.generate(d) for d in range(8)]).write_parquet(tmp_path / "history.parquet")
    (tmp_path / "shop_churn.yaml").write_text(SPEC)
    incoming = home / "data" / "shop_churn" / "incoming"
    stream.write(incoming, range(8, 12))
    drifted = ChurnStream(customers_per_day=600, drift_day=0)
    drifted.generate(12).write_parquet(incoming / "2026-01-13.parquet")
    defs = build_definitions(str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(defs, "train_shop_churn", instance).success
    champion = str(mlflow_client().get_model_version_by_alias("shop_churn", "champion").version)

    scored = defs.resolve_job_def("score_shop_churn").execute_in_process(
        instance=instance, partition_key="2026-01-10"
    )
    assert scored.success
    out = pl.read_parquet(home / "data" / "shop_churn" / "predictions" / "2026-01-10.parquet")
    assert out.height == 600 and out["model_version"].unique().to_list() == [champion]
    assert out["score"].is_between(0, 1).all()
    assert set(out["predicted_label"].unique().to_list()) <= {0, 1}

    missing = defs.resolve_job_def("score_shop_churn").execute_in_process(
        instance=instance, partition_key="2026-01-20", raise_on_error=False
    )
    assert not missing.success
    assert "no incoming rows for 2026-01-20" in step_error_text(missing)
    stream.generate(9).head(0).write_parquet(incoming / "2026-01-21.parquet")
    empty = defs.resolve_job_def("score_shop_churn").execute_in_process(
        instance=instance, partition_key="2026-01-21", raise_on_error=False
    )
    assert not empty.success and "2026-01-21.parquet for 2026-01-21 has no rows" in (
        step_error_text(empty)
    )
    arrival = defs.resolve_sensor_def("score_shop_churn_on_arrival")
    assert arrival.default_status == dg.DefaultSensorStatus.RUNNING

    calm = stage_metadata(scored, "drift_report")
    assert calm["retrain_recommended"] is False and calm["reasons"] == "within thresholds"
    assert calm["model_version"] == champion
    shifted = defs.resolve_job_def("score_shop_churn").execute_in_process(
        instance=instance, partition_key="2026-01-13"
    )
    meta = stage_metadata(shifted, "drift_report")
    assert meta["retrain_recommended"] is True
    assert (
        "usage_hours" in meta["drifted_features"] and "support_contacts" in meta["drifted_features"]
    )
    assert "max PSI" in meta["reasons"]
    # Labels arrive with the simulated files, so realized performance is measured each day.
    assert 0.55 < calm["realized_roc_auc"] < 1.0
    point, interval = str(calm["champion_test_ci"]).split(" ", 1)
    low, high = (float(x) for x in interval.strip("[]").split(","))
    assert low < float(point) < high
    assert 0.5 < low < high < 1.0
