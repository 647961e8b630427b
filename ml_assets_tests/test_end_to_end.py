"""End to end: real Dagster runs, real GX suites, real models, a real MLflow registry."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ml_assets.definitions import build_definitions
from ml_assets.defs.simulation import stage_metadata
from ml_assets_tests.helpers import (
    TABULAR_STAGES,
    check_results,
    dagster_cli,
    materialized,
    mlflow_client,
    run_job,
)

STAGES = TABULAR_STAGES


def test_train_affairs_promotes_a_traceable_champion_reproducibly(home: Path) -> None:
    defs = build_definitions()
    instance = dg.DagsterInstance.ephemeral()
    first = run_job(defs, "train_affairs", instance)
    assert first.success
    assert materialized(first) == {f"affairs/{s}" for s in STAGES}
    checks = check_results(first)
    assert {
        "raw_data_contract",
        "features_contract",
        "splits_disjoint",
        "splits_proportions",
        "splits_time_order",
        "promotion_gate",
    } <= set(checks)
    assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}

    client = mlflow_client()
    champion = client.get_model_version_by_alias("affairs", "champion")
    run = client.get_run(champion.run_id)
    metrics, tags = run.data.metrics, run.data.tags
    for key in (
        "test_roc_auc",
        "test_roc_auc_ci_lower",
        "test_roc_auc_ci_upper",
        "baseline_test_roc_auc",
    ):
        assert key in metrics
    assert (
        metrics["test_roc_auc_ci_lower"]
        < metrics["test_roc_auc"]
        < metrics["test_roc_auc_ci_upper"]
    )
    assert 0.68 < metrics["test_roc_auc"] < 0.82  # a plain logistic model reaches ~0.72
    assert metrics["baseline_test_roc_auc"] == pytest.approx(0.5)
    assert tags["data_fingerprint"] and tags["code_version"] and tags["promoted"] == "True"
    # Named after spec, model and data; linked back to the Dagster run that trained it.
    assert (
        run.info.run_name
        == f"affairs · {tags['model_name']} · candidate · data " + tags["data_fingerprint"][:8]
    )
    assert tags["dagster_run_url"] == f"http://127.0.0.1:3000/runs/{first.run_id}"
    assert f"[{first.run_id}]({tags['dagster_run_url']})" in tags["mlflow.note.content"]
    assert Path(tags["report_path"]).read_text().count("data:image/png;base64,") >= 4
    description = client.get_model_version("affairs", champion.version).description
    assert "Model card" in description and "Limitations" in description
    # 5,092 train + validation rows: chosen by 5-fold stratified cross-validation, shown in the
    # report, the asset metadata and as one MLflow step per fold.
    assert "<h2>Model selection: cross-validation</h2>" in Path(tags["report_path"]).read_text()
    selection = str(stage_metadata(first, "evaluation_report")["cross_validation"])
    for column in ("fold_5", "mean", "std", "prior", "majority", "lightgbm", "glm_binomial"):
        assert column in selection
    history = client.get_metric_history(champion.run_id, "cv_roc_auc")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]
    mean = sum(m.value for m in history) / 5
    assert metrics["validation_roc_auc"] == pytest.approx(mean)

    # The same data, spec and code again: the same model, evaluated, refused and not registered.
    second = run_job(defs, "train_affairs", instance)
    assert second.success
    family = stage_metadata(second, "evaluation_report")["selected_candidate"]
    again = client.get_run(stage_metadata(second, f"candidate_{family}")["mlflow_run_id"])
    for key in ("test_roc_auc", "test_roc_auc_ci_lower", "test_roc_auc_ci_upper", "test_log_loss"):
        assert again.data.metrics[key] == metrics[key]
    assert again.data.tags["data_fingerprint"] == tags["data_fingerprint"]
    assert again.data.tags["test_data_fingerprint"] == tags["test_data_fingerprint"]
    # The second candidate was compared with the first champion on the same test rows.
    gate = check_results(second)["promotion_gate"]
    assert "not_worse_than_champion" in str(gate.metadata["gate"].value)
    assert not gate.passed and "NOT registered" in (gate.description or "")
    assert "same data" in (gate.description or "") and f"champion v{champion.version}" in (
        gate.description or ""
    )
    assert [str(v.version) for v in client.search_model_versions("name='affairs'")] == ["1"]
    assert again.data.tags["promoted"] == "False"


def test_corrupted_data_stops_at_the_blocking_check_and_keeps_the_champion(
    home: Path, user_specs: Path
) -> None:
    defs = build_definitions(str(user_specs))
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(defs, "train_user_affairs", instance).success
    client = mlflow_client()
    champion = client.get_model_version_by_alias("user_affairs", "champion").version
    versions = len(client.search_model_versions("name='user_affairs'"))
    csv = user_specs / "survey.csv"
    good = pl.read_csv(csv)

    # 1. A column that was numeric arrives as text: the raw data contract fails.
    good.with_columns(pl.col("age").cast(pl.String) + " yrs").write_csv(csv)
    result = run_job(defs, "train_user_affairs", instance)
    assert not result.success
    raw_check = check_results(result)["raw_data_contract"]
    assert not raw_check.passed and "age" in str(raw_check.metadata["failures"].value)
    assert materialized(result) == {"user_affairs/raw_data"}

    # 2. The column the target derives from is missing for a quarter of rows: target nulls.
    good.with_columns(
        pl.when(pl.int_range(pl.len()) % 4 == 0)
        .then(None)
        .otherwise(pl.col("affairs"))
        .alias("affairs")
    ).write_csv(csv)
    result = run_job(defs, "train_user_affairs", instance)
    assert not result.success
    feat_check = check_results(result)["features_contract"]
    failures = str(feat_check.metadata["failures"].value)
    assert not feat_check.passed and "had_affair" in failures and "625 of 2500 rows" in failures
    assert "user_affairs/splits" not in materialized(result)
    assert "user_affairs/champion_model" not in materialized(result)

    assert client.get_model_version_by_alias("user_affairs", "champion").version == champion
    assert len(client.search_model_versions("name='user_affairs'")) == versions


def test_user_spec_runs_from_the_cli_with_no_code_change(home: Path, user_specs: Path) -> None:
    out = dagster_cli(
        "job",
        "execute",
        "-m",
        "ml_assets.definitions",
        "-j",
        "train_user_affairs",
        env={"ML_ASSETS_SPECS": str(user_specs)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    champion = mlflow_client().get_model_version_by_alias("user_affairs", "champion")
    assert str(champion.version) == "1"
