"""Training stage: baselines and one candidate asset per model family, each fitted by the
spec's task on the train and validation rows only, and logged to MLflow."""

import time
from typing import Any

import dagster as dg
import polars as pl

from ml_assets.defs.resources import MlflowResource
from ml_assets.defs.shared import key, lineage_tags, train_inputs
from ml_assets.lib import report as report_lib
from ml_assets.lib import splits as split_lib
from ml_assets.lib.families import family as family_of
from ml_assets.lib.names import SEEN_UNTIL_TAG
from ml_assets.lib.records import Trained
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.tasks import Fitted, task_for


def training_assets(spec: MLSpec) -> list[dg.AssetsDefinition]:
    return [_baselines(spec), *(_candidate(spec, f) for f in spec.families)]


def _log(
    spec: MLSpec,
    context: dg.AssetExecutionContext,
    mlflow: MlflowResource,
    fitted: Fitted,
    fingerprint: str,
) -> Trained:
    """One MLflow run for a fitted model, tagged with its lineage."""
    tags = lineage_tags(spec, context, fingerprint, mlflow.dagster_ui_url)
    if fitted.seen_until is not None:
        tags[SEEN_UNTIL_TAG] = fitted.seen_until
    logged = mlflow.tracker().log_model(
        spec.name,
        fitted.model,
        fitted.example,
        fitted.validation,
        tags,
        fitted.reference,
        fitted.cv,
    )
    what = "validation"
    if fitted.backtest is not None:
        what = "backtest mean"
    elif fitted.cv is not None:
        what = f"mean of {fitted.cv.height} cross-validation folds"
    name = fitted.model.name
    context.log.info(f"{name}: {what} {fitted.validation}; MLflow run {logged.run_id}")
    return Trained(fitted.model, logged, fitted.validation, fingerprint, fitted.backtest, fitted.cv)


ORPHAN_AFTER_S = 24 * 3600


def _end_orphans(spec: MLSpec, context: dg.AssetExecutionContext, mlflow: MlflowResource) -> None:
    """End the MLflow runs a killed job left RUNNING (once per training run, first thing)."""

    def finished(run_id: str, started: float) -> bool:
        if run_id == context.run_id:
            return False
        run = context.instance.get_run_by_id(run_id)
        if run is None:
            # Deleted, or run on another instance (an ephemeral one, say) that may be live:
            # only a day-old run is taken for dead.
            return time.time() - started > ORPHAN_AFTER_S
        return run.is_finished

    for orphan in mlflow.tracker().end_orphan_runs(spec.name, finished):
        context.log.warning(
            f"'{spec.name}': MLflow run {orphan} was left RUNNING by a Dagster run that has "
            "ended (killed?); marked KILLED"
        )


def _baselines(spec: MLSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=key(spec, "baselines"),
        group_name=spec.name,
        kinds={"python", "mlflow"},
        ins=train_inputs(spec),
        description="Naive baselines every candidate must beat (prior/majority, mean/median, "
        "or naive/seasonal naive/drift/mean for forecasting)",
    )
    def baselines(
        context: dg.AssetExecutionContext, splits: pl.DataFrame, mlflow: MlflowResource
    ) -> dg.Output[list[Trained]]:
        fingerprint = split_lib.training_fingerprint(splits)
        _end_orphans(spec, context, mlflow)
        trained = [
            _log(spec, context, mlflow, fitted, fingerprint)
            for fitted in task_for(spec).fit_baselines(spec, splits)
        ]
        table = pl.DataFrame([{"baseline": t.model.name, **t.validation} for t in trained])
        return dg.Output(
            trained,
            metadata={
                "validation_metrics": dg.MetadataValue.md(report_lib.markdown_table(table)),
                "data_fingerprint": trained[0].data_fingerprint,
            },
        )

    return baselines


def _candidate(spec: MLSpec, family: str) -> dg.AssetsDefinition:
    library = family_of(family, spec.task).library

    @dg.asset(
        key=key(spec, f"candidate_{family}"),
        group_name=spec.name,
        kinds={library, "mlflow"},
        ins=train_inputs(spec),
        description=f"{family} candidate, tuned and scored on the validation split or by "
        "cross-validation on train + validation (split.cv_folds), then fitted for use",
    )
    def candidate(
        context: dg.AssetExecutionContext, splits: pl.DataFrame, mlflow: MlflowResource
    ) -> dg.Output[Trained]:
        fitted = task_for(spec).fit_candidate(spec, splits, family)
        trained = _log(spec, context, mlflow, fitted, split_lib.training_fingerprint(splits))
        model = trained.model
        primary = spec.primary_metric
        metadata: dict[str, Any] = {
            "model": model.name,
            "mlflow_run_id": trained.logged.run_id,
            f"validation_{primary}": round(trained.validation[primary], 4),
        }
        if trained.cv is not None:  # the selection score is the mean over the folds
            metadata |= {
                f"cv_std_{primary}": round(float(trained.cv[primary].std() or 0.0), 4),
                "cv_folds": dg.MetadataValue.md(report_lib.markdown_table(trained.cv)),
            }
        metadata |= {
            "params": dg.MetadataValue.json({k: str(v) for k, v in model.params.items()}),
            "data_fingerprint": trained.data_fingerprint,
        }
        return dg.Output(trained, metadata=metadata)

    return candidate
