"""Monitoring stage: the daily drift report against the champion's training reference, the
sensor that scores each day's file as it arrives, the drift-triggered retraining sensor and
the weekly safety net."""

import datetime as dt
import json
from typing import Any

import dagster as dg
import polars as pl

from ml_assets.defs import executors
from ml_assets.defs.resources import ArtifactStore, MlflowResource, write_text_atomic
from ml_assets.defs.scoring import predictions_asset
from ml_assets.defs.shadow import shadow_assets, shadow_keys
from ml_assets.defs.shared import daily_partitions, key, monitoring_start
from ml_assets.lib import data as data_lib
from ml_assets.lib import drift as drift_lib
from ml_assets.lib import names
from ml_assets.lib import realized as realized_lib
from ml_assets.lib import report as report_lib
from ml_assets.lib import validation as val_lib
from ml_assets.lib.metrics import Estimate, get_metric
from ml_assets.lib.names import PARTITION_TAG, TRIGGER_TAG, WINDOW_END_TAG
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.tasks import task_for
from ml_assets.lib.tracking import REFERENCE_DIR

DRIFT_ARTIFACT = "drift_report.html"


def monitoring_defs(spec: MLSpec, train_job: Any) -> dg.Definitions:
    """Daily scoring and drift assets, their job and arrival sensor, the drift sensor and the weekly
    retraining schedule; empty for a spec without a ``monitoring`` section."""
    monitoring = spec.monitoring
    if monitoring is None:
        return dg.Definitions()
    score_job = dg.define_asset_job(
        names.score_job(spec.name),
        selection=dg.AssetSelection.assets(*scoring_keys(spec)),
        description=f"Score and monitor one day of incoming '{spec.name}' rows",
        config=executors.job_config(),
    )
    weekly = dg.ScheduleDefinition(
        name=names.weekly_retrain_schedule(spec.name),
        job=train_job,
        cron_schedule=monitoring.retrain_cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Safety net: retrain weekly even without drift; the gate still "
        "decides whether the candidate replaces the champion",
    )
    return dg.Definitions(
        assets=[predictions_asset(spec), _drift_report(spec), *shadow_assets(spec)],
        jobs=[score_job],
        schedules=[weekly],
        sensors=[_score_on_arrival(spec, score_job), _retrain_on_drift(spec)],
    )


def scoring_keys(spec: MLSpec) -> list[dg.AssetKey]:
    """The daily-partitioned assets, which the train job leaves out."""
    if spec.monitoring is None:
        return []
    return [key(spec, "predictions"), key(spec, "drift_report"), *shadow_keys(spec)]


def _drift_report(spec: MLSpec) -> dg.AssetsDefinition:
    monitoring = spec.monitoring
    assert monitoring is not None

    @dg.asset(
        key=key(spec, "drift_report"),
        group_name=spec.name,
        kinds={"polars", "mlflow"},
        partitions_def=daily_partitions(spec),
        ins={"predictions": dg.AssetIn(key(spec, "predictions"))},
        description="The day's rows against the champion's training reference: PSI and KS / "
        "chi-squared per feature, prediction drift, missing rates, realized performance",
    )
    def drift_report(
        context: dg.AssetExecutionContext,
        predictions: pl.DataFrame,
        mlflow: MlflowResource,
        artifacts: ArtifactStore,
    ) -> dg.Output[pl.DataFrame]:
        tracker, day = mlflow.tracker(), context.partition_key
        # The version that scored the day, not whatever holds the alias now.
        scored_by = tracker.load_version(spec.name, str(predictions["model_version"][0]))
        reference = tracker.load_reference(scored_by.run_id)
        if reference is None:
            raise RuntimeError(
                f"model '{spec.name}' v{scored_by.version} has no training reference sample "
                f"logged (artifact {REFERENCE_DIR}/); retrain it with job train_{spec.name}"
            )
        features = [c for c in reference.columns if c in predictions.columns]
        table = drift_lib.feature_drift(
            reference,
            predictions,
            features,
            val_lib.categorical_columns(spec, reference),
            monitoring.psi_threshold,
            monitoring.p_threshold,
        )
        # The day's scores as predictions stored them (for K classes, every class's
        # probability: the realized metric needs them and drift compares each class's).
        day_scores = task_for(spec).scores_of(scored_by.model, predictions)
        prediction = drift_lib.prediction_drift(
            scored_by.model.predict(reference), day_scores, scored_by.model.classes
        )
        metric = get_metric(spec.primary_metric)
        run_metrics = tracker.client.get_run(scored_by.run_id).data.metrics
        test_keys = [f"test_{metric.name}{s}" for s in ("", "_ci_lower", "_ci_upper")]
        champion_test = (
            Estimate(*(run_metrics[k] for k in test_keys))
            if all(k in run_metrics for k in test_keys)
            else None
        )
        champion_ci = (champion_test.lower, champion_test.upper) if champion_test else None
        result = drift_lib.verdict(
            table,
            prediction,
            realized_lib.realized_performance(spec, predictions, scored_by.model, day_scores),
            champion_ci,
            metric.greater_is_better,
            monitoring.max_drifted_share,
            monitoring.max_psi,
        )
        dagster_url = f"{mlflow.dagster_ui_url.rstrip('/')}/runs/{context.run_id}"
        page = report_lib.render_drift_html(
            f"Drift report: {spec.name} {day} (model v{scored_by.version})",
            result,
            table,
            reference,
            predictions,
            prediction,
            metric.name,
            champion_test,
            {"Dagster run": dagster_url},
        )
        plot = artifacts.drift_plot_path(spec.name, day)
        write_text_atomic(plot, page)
        summary = result.summary(scored_by.version)
        realized = result.realized
        experiment, run_id = tracker.log_monitoring(
            f"{spec.name}-monitoring",
            f"{spec.name} · drift · {day} · v{scored_by.version}",
            result.metrics(metric.name),
            {
                "spec": spec.name,
                "day": day,
                "model_version": scored_by.version,
                "retrain_recommended": str(result.retrain),
                "prediction_psi_of": result.prediction_psi_of,
                "reasons": str(summary["reasons"])[:5000],
                "dagster_run_url": dagster_url,
                "mlflow.note.content": f"Drift report of Dagster run [{context.run_id}]"
                f"({dagster_url}) for {spec.name} on {day}.",
            },
            {DRIFT_ARTIFACT: page},
        )
        page_url = tracker.artifact_url(mlflow.ui_url, experiment, run_id, DRIFT_ARTIFACT)
        if result.retrain:
            context.log.warning(f"'{spec.name}' {day}: retraining recommended: {result.reasons}")
        return dg.Output(
            table.with_columns(pl.lit(scored_by.version).alias("model_version")),
            metadata={
                **summary,  # what the retraining sensor reads back
                "features_by_drift": dg.MetadataValue.md(report_lib.markdown_table(table)),
                # Opens in the MLflow UI's artifact view; the file itself is beside the data.
                "drift_page": dg.MetadataValue.url(page_url),
                "drift_page_file": dg.MetadataValue.path(str(plot)),
                f"realized_{metric.name}": round(realized.value, 4) if realized else float("nan"),
                f"realized_{metric.name}_ci": realized.fmt() if realized else "no labels yet",
                "champion_test_ci": champion_test.fmt() if champion_test else "not logged",
            },
        )

    return drift_report


SCORING_LOOKBACK_DAYS = 7


def _score_on_arrival(spec: MLSpec, job: Any) -> dg.SensorDefinition:
    """Scores and monitors each day whose file has arrived in the incoming folder and was not
    scored since it was written, among the newest days (oldest first); a late file is picked
    up, and a replaced one scored again. Run keys keep one file from being launched twice."""
    monitoring = spec.monitoring
    assert monitoring is not None
    scored_key = key(spec, "predictions")
    start = monitoring_start(spec)

    @dg.sensor(
        name=names.scoring_sensor(spec.name),
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Score and report drift for each day of '{spec.name}' whose file arrives "
        f"in {monitoring.incoming}/ (the newest {SCORING_LOOKBACK_DAYS} days)",
    )
    def score_on_arrival(context: dg.SensorEvaluationContext, artifacts: ArtifactStore) -> Any:
        incoming = artifacts.incoming_dir(spec.name, monitoring.incoming)
        arrived = {d: p.stat().st_mtime for d, p in data_lib.day_files(incoming).items()}
        window = sorted(arrived)[-SCORING_LOOKBACK_DAYS:]
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(scored_key, asset_partitions=[d.isoformat() for d in window]),
            limit=100,
        ).records
        scored_at: dict[dt.date, float] = {}
        for record in records:
            day = dt.date.fromisoformat(str(record.partition_key))
            scored_at[day] = max(scored_at.get(day, 0.0), record.timestamp)
        today = dt.datetime.now(dt.UTC).date()
        plan = data_lib.days_to_score(arrived, scored_at, start, today, SCORING_LOOKBACK_DAYS)
        if plan.due:
            return [
                dg.RunRequest(
                    run_key=f"{spec.name}:score:{d.isoformat()}:{arrived[d]:.0f}",
                    partition_key=d.isoformat(),
                )
                for d in plan.due
            ]
        ahead = (
            f"; {', '.join(d.isoformat() for d in plan.ahead)} arrived ahead of its day and is "
            "scored once that day comes"
            if plan.ahead
            else ""
        )
        if plan.newest is None:
            return dg.SkipReason(f"no daily file in {incoming} yet{ahead}")
        waiting = plan.newest + dt.timedelta(days=1)
        return dg.SkipReason(
            f"every day up to {plan.newest} is scored; waiting for "
            f"{artifacts.incoming_path(spec.name, monitoring.incoming, waiting.isoformat())}"
            + ahead
        )

    return score_on_arrival


def _retrain_on_drift(spec: MLSpec) -> dg.SensorDefinition:
    """Requests train_<spec> when the newest drift report recommends it: one run per drifted
    day (run key), at most one per cooldown, with the triggering numbers as run tags."""
    monitoring = spec.monitoring
    assert monitoring is not None
    report_key = key(spec, "drift_report")

    @dg.sensor(
        name=names.drift_sensor(spec.name),
        job_name=names.train_job(spec.name),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=f"Retrain '{spec.name}' when a daily drift report passes the spec's thresholds",
    )
    def retrain_on_drift(context: dg.SensorEvaluationContext, mlflow: MlflowResource) -> Any:
        event = context.instance.get_latest_materialization_event(report_key)
        if event is None or event.asset_materialization is None:
            return dg.SkipReason("no drift report yet")
        report = event.asset_materialization
        signal = drift_lib.RetrainSignal.from_metadata(
            {k: getattr(v, "value", v) for k, v in report.metadata.items()}
        )
        if not signal.retrain:
            return dg.SkipReason(f"{report.partition}: {signal.reasons}")
        newest = max(context.instance.get_materialized_partitions(report_key), default=None)
        if newest is not None and str(report.partition) < newest:
            # A re-scored past day says nothing about today; retraining on its window would
            # train on stale data.
            return dg.SkipReason(
                f"{report.partition} is a re-run of a past day (newest report: {newest}); "
                "drift retraining follows the newest day only"
            )
        # The instance's runs are the record of what was requested, so a daemon that starts
        # without this sensor's cursor (after the demo's simulation, say) repeats nothing.
        cursor = json.loads(context.cursor) if context.cursor else {}
        last = _last_drift_retrain(context.instance, spec)
        if report.partition in (cursor.get("partition"), last[0] if last else None):
            return dg.SkipReason(f"retraining for {report.partition} already requested")
        requested_at = max(cursor.get("requested_at", 0.0), last[1] if last else 0.0)
        waited = (event.timestamp - requested_at) / 3600
        if requested_at and waited < monitoring.cooldown_hours:
            return dg.SkipReason(
                f"cooldown: {waited:.1f} h since the last drift retraining "
                f"(< {monitoring.cooldown_hours} h)"
            )
        champion = mlflow.tracker().champion_version(spec.name)
        if champion is not None and champion[0] != signal.model_version:
            return dg.SkipReason(
                f"{report.partition} was scored by v{signal.model_version}, and the champion is "
                f"now v{champion[0]}: that drift is not the new champion's (the next day it "
                "scores will tell)"
            )
        context.update_cursor(
            json.dumps({"partition": report.partition, "requested_at": event.timestamp})
        )
        return dg.RunRequest(
            run_key=f"{spec.name}:drift:{report.partition}",
            tags={
                TRIGGER_TAG: "drift",
                PARTITION_TAG: str(report.partition),
                # Retrain on the window ending at the drifted day, whatever arrives meanwhile.
                WINDOW_END_TAG: str(report.partition),
                "ml_assets/drifted_features": signal.drifted_features[:200],
                "ml_assets/max_psi": f"{signal.max_psi:.4f}",
                "ml_assets/drifted_share": f"{signal.drifted_share:.4f}",
                "ml_assets/reasons": signal.reasons[:250],
                "ml_assets/champion_version": signal.model_version,
            },
        )

    return retrain_on_drift


def _last_drift_retrain(instance: dg.DagsterInstance, spec: MLSpec) -> tuple[str, float] | None:
    """(drifted day, creation time) of the newest drift-triggered run of the train job."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=names.train_job(spec.name), tags={TRIGGER_TAG: "drift"}),
        limit=1,
    )
    if not records:
        return None
    record = records[0]
    return record.dagster_run.tags.get(PARTITION_TAG, ""), record.create_timestamp.timestamp()
