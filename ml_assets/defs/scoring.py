"""The champion in use: each day's incoming rows scored through the registry alias, and for
forecasting specs the next periods forecast by the champion refit on every row."""

from typing import Any

import dagster as dg
import polars as pl

from ml_assets.defs.resources import ArtifactStore, MlflowResource
from ml_assets.defs.shared import ALL_SPLITS, daily_partitions, key
from ml_assets.lib import compiled as compiled_lib
from ml_assets.lib import data as data_lib
from ml_assets.lib import forecasters as fc_lib
from ml_assets.lib import report as report_lib
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.tasks import task_for


def class_shares(scored: pl.DataFrame) -> dict[str, float]:
    """The share of the day's rows predicted as each class."""
    counts = scored["predicted_label"].cast(pl.String).value_counts(sort=True)
    return {str(k): round(n / scored.height, 4) for k, n in counts.iter_rows()}


def predictions_asset(spec: MLSpec) -> dg.AssetsDefinition:
    monitoring = spec.monitoring
    assert monitoring is not None

    @dg.asset(
        key=key(spec, "predictions"),
        group_name=spec.name,
        kinds={"polars", "mlflow"},
        partitions_def=daily_partitions(spec),
        deps=[key(spec, "champion_model")],
        description=f"Each day's incoming rows scored by models:/{spec.name}@champion (the "
        "registered alias, never the newest file); the model version is recorded per row",
    )
    def predictions(
        context: dg.AssetExecutionContext, mlflow: MlflowResource, artifacts: ArtifactStore
    ) -> dg.Output[pl.DataFrame]:
        day = context.partition_key
        path = artifacts.incoming_path(spec.name, monitoring.incoming, day)
        if not path.exists():
            raise data_lib.DataError(
                f"spec '{spec.name}': no incoming rows for {day}: expected the file {path}"
            )
        rows = data_lib.derive_inputs(spec, data_lib.read_day_file(spec, path))
        if rows.height == 0:
            raise data_lib.DataError(
                f"spec '{spec.name}': incoming file {path} for {day} has no rows; replace it "
                "with the day's rows and re-run this partition"
            )
        ref = mlflow.tracker().load_champion(spec.name)
        if ref is None:
            raise RuntimeError(
                f"'{spec.name}' has no champion to score with; run job train_{spec.name} first"
            )
        predictor = ref.model.prepare_to_score(rows)
        out = task_for(spec).score(spec, ref.model, ref.version, rows)
        if compiled_lib.fell_back(predictor):
            context.log.warning(f"'{spec.name}' scored without the compiled model: {predictor}")
        scores = out["score"].to_numpy()
        return dg.Output(
            out,
            metadata={
                "model_version": ref.version,
                "predictor": predictor,
                "incoming": dg.MetadataValue.path(str(path)),
                "scored_rows": out.height,
                "mean_score": round(float(scores.mean()), 4) if len(scores) else float("nan"),
                **(
                    {"predicted_class_shares": dg.MetadataValue.json(class_shares(out))}
                    if ref.model.classes is not None
                    else {}
                ),
            },
        )

    return predictions


def forecast_asset(spec: MLSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=key(spec, "forecast"),
        group_name=spec.name,
        kinds={"polars", "mlflow"},
        ins={
            "splits": dg.AssetIn(key(spec, "splits"), metadata=ALL_SPLITS),
            "champion_model": dg.AssetIn(key(spec, "champion_model")),
        },
        output_required=False,
        description="The next `horizon` periods with intervals from the registered champion, "
        "refit on every row (holdout included)",
    )
    def forecast(
        context: dg.AssetExecutionContext,
        splits: pl.DataFrame,
        champion_model: dict[str, Any],
        mlflow: MlflowResource,
    ) -> Any:
        assert spec.forecast is not None and spec.time_column is not None
        ref = mlflow.tracker().load_champion(spec.name)
        if ref is None or not isinstance(ref.model, fc_lib.Forecaster):
            context.log.error(f"'{spec.name}' has no champion: no forecast is produced")
            return
        series = splits.drop(data_lib.SPLIT).sort(spec.time_column)
        fitted = ref.model.fit(series)
        future = fitted.future_frame(spec.forecast.horizon)
        fc = fitted.forecast(spec.forecast.horizon, future)
        frame = pl.DataFrame(
            {
                spec.time_column: future[spec.time_column],
                "forecast": fc.mean,
                "lower": fc.lower if fc.lower is not None else [None] * len(fc.mean),
                "upper": fc.upper if fc.upper is not None else [None] * len(fc.mean),
            }
        ).with_columns(
            pl.lit(ref.version).alias("champion_version"), pl.lit(fitted.name).alias("model")
        )
        yield dg.Output(
            frame,
            metadata={
                "champion_version": ref.version,
                "model": fitted.name,
                "trained_through": str(fitted.last_time),
                "interval_level": spec.evaluation.confidence,
                "preview": dg.MetadataValue.md(report_lib.markdown_table(frame.head(12))),
            },
        )

    return forecast
