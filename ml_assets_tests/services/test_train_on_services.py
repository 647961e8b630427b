"""train_affairs and train_co2 as a team runs them: the Dagster instance in PostgreSQL, MLflow
on its tracking server (PostgreSQL store, artifacts in S3), asset data in the S3 bucket."""

from __future__ import annotations

import pickle

import dagster as dg
import mlflow
import numpy as np
import polars as pl
import statsmodels.api as sm
from upath import UPath

from ml_assets.lib.storage import storage_path
from ml_assets.lib.tracking import CHAMPION_ALIAS
from ml_assets_tests.helpers import TABULAR_STAGES
from ml_assets_tests.services.conftest import DATA_BUCKET, MLFLOW_BUCKET, Stack, forget_models


def _champion_artifacts(stack: Stack, name: str) -> list[str]:
    """The champion's model files in the MLflow bucket, found from the registry."""
    client = stack.mlflow()
    version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    experiment = client.get_run(version.run_id).info.experiment_id
    model_id = version.source.removeprefix("models:/")  # the logged model, m-<id>
    prefix = f"artifacts/{experiment}/models/{model_id}/artifacts/"
    return [k.removeprefix(prefix) for k in stack.keys(MLFLOW_BUCKET, prefix)]


def test_affairs_and_co2_train_on_postgres_the_mlflow_server_and_s3(stack: Stack) -> None:
    forget_models(stack.mlflow(), "affairs", "co2")
    for spec in ("affairs", "co2"):
        done = stack.run(
            "dagster", "job", "execute", "-m", "ml_assets.definitions", "-j", f"train_{spec}"
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        runs = {r.job_name: r for r in instance.get_runs()}
        assert {runs["train_affairs"].status, runs["train_co2"].status} == {
            dg.DagsterRunStatus.SUCCESS
        }
        # Every stage's value is in the bucket under this deployment's data dir, and the
        # materialization records say so.
        for stage in TABULAR_STAGES:
            event = instance.get_latest_materialization_event(dg.AssetKey(["affairs", stage]))
            path = event.asset_materialization.metadata["path"].value
            assert path.startswith(f"s3://ml-assets/{stack.data_prefix}/affairs/"), path
            assert UPath(path).exists(), path

    data = UPath(stack.env["ML_ASSETS_DATA_DIR"])
    for spec in ("affairs", "co2"):
        assert (data / spec / "data_contract.json").exists()
        with (data / spec / "evaluation_report.pkl").open("rb") as fh:
            outcome = pickle.load(fh)
        assert UPath(outcome.report_path).exists(), outcome.report_path
        assert outcome.report_path.startswith(f"s3://ml-assets/{stack.data_prefix}/{spec}/")
        # The registry's champion is this run's selected candidate, its files in the bucket.
        version = stack.mlflow().get_model_version_by_alias(spec, CHAMPION_ALIAS)
        assert version.run_id == outcome.selected.logged.run_id
        assert {"MLmodel", "python_model.pkl"} <= set(_champion_artifacts(stack, spec))
        run = stack.mlflow().get_run(version.run_id)
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri

    # The champion loads back from the server and scores as the model the run trained.
    rows = pl.from_pandas(sm.datasets.fair.load_pandas().data).head(200)
    with (data / "affairs" / "evaluation_report.pkl").open("rb") as fh:
        trained = pickle.load(fh).selected.model
    served = mlflow.pyfunc.load_model(f"models:/affairs@{CHAMPION_ALIAS}")
    np.testing.assert_allclose(
        np.asarray(served.predict(rows.to_pandas())), trained.predict(rows), rtol=1e-12
    )
    with (data / "co2" / "forecast.parquet").open("rb") as fh:
        forecast = pl.read_parquet(fh)
    assert forecast.height > 0
    co2 = mlflow.pyfunc.load_model(f"models:/co2@{CHAMPION_ALIAS}")
    assert co2.metadata.get_model_info().signature is not None


def test_a_long_lived_process_sees_files_other_processes_write(stack: Stack) -> None:
    """A Celery worker or a code server lists the incoming folder many times: each listing
    shows what other processes wrote and removed since the last one."""
    folder = storage_path(stack.env["ML_ASSETS_DATA_DIR"]) / "churn" / "incoming"
    s3 = stack.s3()
    key = f"{stack.data_prefix}/churn/incoming/2026-01-01.parquet"
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=b"first")
    assert [p.name for p in folder.iterdir()] == ["2026-01-01.parquet"]
    s3.put_object(Bucket=DATA_BUCKET, Key=key.replace("01-01", "01-02"), Body=b"second")
    assert sorted(p.name for p in folder.iterdir()) == ["2026-01-01.parquet", "2026-01-02.parquet"]
    assert (folder / "2026-01-02.parquet").exists()
    s3.delete_object(Bucket=DATA_BUCKET, Key=key)
    assert [p.name for p in folder.iterdir()] == ["2026-01-02.parquet"]
