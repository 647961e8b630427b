"""Three classes end to end: the built-in 'party' spec trained, gated and promoted by a real
Dagster run, its champion answering one probability per class through MLflow and scoring a
file through its alias; and a monitored three-class spec scored and drift-checked daily, with
the realized metric of labelled days."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from ml_assets import cli
from ml_assets.definitions import build_definitions
from ml_assets.lib.churn import ChurnStream
from ml_assets_tests.helpers import (
    TABULAR_STAGES,
    check_results,
    materialized,
    mlflow_client,
    run_job,
)

PARTIES = ["democrat", "independent", "republican"]
FEATURES = ["popul", "TVnews", "selfLR", "ClinLR", "DoleLR", "age", "educ", "income"]


def test_party_is_trained_gated_promoted_and_scored_through_its_alias(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    defs = build_definitions()
    result = run_job(defs, "train_party", dg.DagsterInstance.ephemeral())
    assert result.success
    assert materialized(result) == {f"party/{s}" for s in TABULAR_STAGES}
    checks = check_results(result)
    assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}

    client = mlflow_client()
    champion = client.get_model_version_by_alias("party", "champion")
    metrics = client.get_run(champion.run_id).data.metrics
    # The three-class log loss of the class shares is ~1.08; the champion is well below it.
    assert metrics["baseline_test_log_loss"] == pytest.approx(1.08, abs=0.01)
    assert metrics["test_log_loss"] < 0.95
    assert metrics["improvement_vs_baseline_log_loss_ci_lower"] > 0
    assert 0.7 < metrics["test_roc_auc"] < 0.9

    # The report has the per-class table, the confusion matrix, curves and calibration.
    report = next((home / "data" / "party" / "reports").glob("evaluation_report_*.html"))
    page = report.read_text()
    for text in ("Per class", "predicted independent", "ROC and precision-recall", "top class"):
        assert text in page, text

    # The registered pyfunc answers one probability column per class name.
    raw = pl.from_pandas(sm.datasets.anes96.load_pandas().data)
    rows = raw.head(40)
    served = mlflow.pyfunc.load_model("models:/party@champion").predict(
        rows.select(FEATURES).to_pandas()
    )
    assert list(served.columns) == PARTIES
    np.testing.assert_allclose(served.to_numpy().sum(axis=1), 1.0)

    # A file scored through the alias: the same probabilities, the label by name.
    source, out = tmp_path / "voters.csv", tmp_path / "scored.parquet"
    rows.drop("PID", "vote").write_csv(source)
    code = cli.main(["score", "party", "--input", str(source), "--output", str(out)])
    assert code == 0
    said = capsys.readouterr().out
    assert f"models:/party@champion (v{champion.version})" in said
    assert "predicted classes:" in said
    scored = pl.read_parquet(out)
    np.testing.assert_allclose(
        scored.select([f"proba_{p}" for p in PARTIES]).to_numpy(), served.to_numpy(), atol=1e-12
    )
    assert scored["predicted_label"].to_list() == [PARTIES[i] for i in served.to_numpy().argmax(1)]
    assert scored["model_version"].unique().to_list() == [str(champion.version)]

    rows.drop("selfLR").write_csv(source)
    assert cli.main(["score", "party", "--input", str(source), "--output", str(out)]) == 2
    assert "lacks column(s) ['selfLR']" in capsys.readouterr().err


PLAN_SPEC = """
name: plan_choice
task: classification
source: {path: history.parquet}
target: plan
drop: [customer_id, snapshot_date, churned]
metrics: {primary: log_loss, secondary: [macro_f1, accuracy]}
candidates: {lightgbm: {budget: 2, num_boost_round: 200}}
validation: {min_rows: 100}
evaluation: {bootstrap_samples: 200}
monitoring: {start_date: 2026-01-01}
"""


def test_a_three_class_spec_is_scored_and_monitored_daily(home: Path, tmp_path: Path) -> None:
    """Which plan a customer is on (basic, standard, premium) from the churn stream: each day
    scored by the champion, its drift measured and, its labels being in the file, its
    realized log loss computed from the stored class probabilities."""
    stream = ChurnStream(customers_per_day=400)
    pl.concat([stream.generate(d) for d in range(6)]).write_parquet(tmp_path / "history.parquet")
    (tmp_path / "plan_choice.yaml").write_text(PLAN_SPEC)
    incoming = home / "data" / "plan_choice" / "incoming"
    stream.write(incoming, range(6, 8))
    ChurnStream(customers_per_day=400, drift_day=0).generate(8).write_parquet(
        incoming / "2026-01-09.parquet"
    )
    defs = build_definitions(str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(defs, "train_plan_choice", instance).success
    champion = mlflow_client().get_model_version_by_alias("plan_choice", "champion")

    reports = {}
    for day in ("2026-01-07", "2026-01-09"):
        run = defs.resolve_job_def("score_plan_choice").execute_in_process(
            instance=instance, partition_key=day
        )
        assert run.success
        reports[day] = next(
            e.materialization.metadata
            for e in run.get_asset_materialization_events()
            if e.materialization.asset_key.to_user_string() == "plan_choice/drift_report"
        )
    scored = pl.read_parquet(home / "data" / "plan_choice" / "predictions" / "2026-01-07.parquet")
    plans = ["basic", "premium", "standard"]
    probabilities = scored.select([f"proba_{p}" for p in plans]).to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert set(scored["predicted_label"].unique().to_list()) <= set(plans)
    assert scored["model_version"].unique().to_list() == [str(champion.version)]

    calm, drifted = reports["2026-01-07"], reports["2026-01-09"]
    realized = calm["realized_log_loss"].value
    assert np.isfinite(realized) and realized < 0.9  # the shares alone give ~0.98
    assert "no labels yet" not in calm["realized_log_loss_ci"].value
    assert drifted["retrain_recommended"].value is True
    assert calm["retrain_recommended"].value is False
    # Prediction drift is of the class probability that moved most, named.
    for report in (calm, drifted):
        assert report["prediction_psi_of"].value in {f"P({p})" for p in plans}
        assert np.isfinite(report["prediction_psi"].value)
