"""The asset factory: one spec in, one group of assets, checks and a job out.

Assets here are adapters: they load inputs, call ``ml_assets.lib`` and turn results into
metadata. Keys are ``<spec>/<stage>``; the test split reaches only ``evaluation_report``.
"""

import dataclasses
import datetime as dt
import json
from typing import Any

import dagster as dg
import polars as pl

from ml_assets.defs.resources import (
    SCHEMA_ONLY_METADATA_KEY,
    SPLITS_METADATA_KEY,
    ArtifactStore,
    MlflowResource,
)
from ml_assets.lib import data as data_lib
from ml_assets.lib import drift as drift_lib
from ml_assets.lib import evaluation as eval_lib
from ml_assets.lib import forecast_eval as fe_lib
from ml_assets.lib import forecasters as fc_lib
from ml_assets.lib import gate as gate_lib
from ml_assets.lib import models as model_lib
from ml_assets.lib import report as report_lib
from ml_assets.lib import splits as split_lib
from ml_assets.lib import timeseries as ts_lib
from ml_assets.lib import validation as val_lib
from ml_assets.lib.metrics import get_metric
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.tracking import (
    REFERENCE_DIR,
    REFERENCE_ROWS,
    ChampionLoadError,
    Tracker,
    Trained,
    code_version,
    git_commit,
)

WINDOW_END_TAG = "ml_assets/window_end"
TRAIN_AND_VALIDATION = {SPLITS_METADATA_KEY: ["train", "validation"]}
# The report reads every split: test rows to score, the others to check that the models were
# trained on exactly these splits (and, for forecasting, for the MASE scale and plots).
ALL_SPLITS = {SPLITS_METADATA_KEY: ["train", "validation", "test"]}


def _key(spec: MLSpec, stage: str) -> dg.AssetKey:
    return dg.AssetKey([spec.name, stage])


def _md_failures(outcome: val_lib.ValidationOutcome) -> str:
    if not outcome.failures:
        return "all expectations passed"
    frame = pl.DataFrame(
        [
            {"expectation": f.expectation, "column": f.column or "(table)", "detail": f.detail}
            for f in outcome.failures
        ]
    )
    return report_lib.markdown_table(frame)


def _check_result(outcome: val_lib.ValidationOutcome, extra: dict[str, Any]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.summary()[:2000],
        metadata={
            "expectations_evaluated": outcome.evaluated,
            "expectations_failed": len(outcome.failures),
            "rows": outcome.rows,
            "failures": dg.MetadataValue.md(_md_failures(outcome)),
            **extra,
        },
    )


def build_spec_defs(spec: MLSpec) -> dg.Definitions:
    """Assets, blocking checks and the ``train_<spec>`` job for one spec."""
    assets = [
        _raw_data(spec),
        _features(spec),
        _splits(spec),
        _baselines(spec),
        *(_candidate(spec, family) for family in spec.families),
        _evaluation_report(spec),
        _champion_model(spec),
    ]
    checks = [_raw_data_contract(spec), _features_contract(spec)]
    if spec.task == "forecasting":
        assets.append(_forecast(spec))
        checks.append(_time_index(spec))
    job = dg.define_asset_job(
        f"train_{spec.name}",
        selection=training_selection(spec),
        description=f"Validate, split, train, evaluate and gate the '{spec.name}' spec",
        config={"execution": {"config": {"in_process": {}}}},
        tags={"ml_assets/spec": spec.name},
    )
    jobs: list[Any] = []
    schedules: list[Any] = []
    sensors: list[Any] = []
    if spec.monitoring is not None:
        assets += [_predictions(spec), _drift_report(spec)]
        score_job = dg.define_asset_job(
            f"score_{spec.name}",
            selection=dg.AssetSelection.assets(
                _key(spec, "predictions"), _key(spec, "drift_report")
            ),
            description=f"Score and monitor one day of incoming '{spec.name}' rows",
        )
        jobs.append(score_job)
        sensors.append(_retrain_on_drift(spec))
        schedules.append(
            dg.ScheduleDefinition(
                name=f"weekly_retrain_{spec.name}",
                job=job,
                cron_schedule=spec.monitoring.retrain_cron,
                default_status=dg.DefaultScheduleStatus.RUNNING,
                description="Safety net: retrain weekly even without drift; the gate still "
                "decides whether the candidate replaces the champion",
            )
        )
        schedules.append(_daily_scoring(spec, score_job))
    return dg.Definitions(
        assets=assets, asset_checks=checks, jobs=[job, *jobs], schedules=schedules, sensors=sensors
    )


def training_selection(spec: MLSpec) -> dg.AssetSelection:
    """The spec's group without its daily-partitioned scoring assets."""
    group = dg.AssetSelection.groups(spec.name)
    if spec.monitoring is None:
        return group
    return group - dg.AssetSelection.assets(_key(spec, "predictions"), _key(spec, "drift_report"))


def _source_text(spec: MLSpec) -> str:
    if spec.source.statsmodels:
        return f"statsmodels:{spec.source.statsmodels}"
    if spec.source.recent_days is not None and spec.monitoring is not None:
        return (
            f"the last {spec.source.recent_days} days of <data dir>/{spec.name}/"
            f"{spec.monitoring.incoming}/"
        )
    return str(spec.source_file)


def _load_source(
    spec: MLSpec, context: dg.AssetExecutionContext, artifacts: ArtifactStore
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The source rows, and for a ``recent_days`` source the window it covers."""
    if spec.source.recent_days is None or spec.monitoring is None:
        return data_lib.load_raw(spec), {"source": _source_text(spec)}
    tag = context.run.tags.get(WINDOW_END_TAG)
    try:
        end = dt.date.fromisoformat(tag) if tag else None
    except ValueError as exc:
        raise data_lib.DataError(
            f"spec '{spec.name}': run tag {WINDOW_END_TAG}={tag!r} is not a date; use YYYY-MM-DD"
        ) from exc
    directory = artifacts.incoming_dir(spec.name, spec.monitoring.incoming)
    frame, window = data_lib.load_recent_days(spec, directory, end)
    if window.missing:
        context.log.warning(
            f"'{spec.name}': no daily file for {len(window.missing)} day(s) of the window: "
            + ", ".join(d.isoformat() for d in window.missing)
        )
    return frame, {
        "source": str(directory),
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "window_end_from": f"run tag {WINDOW_END_TAG}" if tag else "newest daily file",
        "days_loaded": len(window.loaded),
        "days_missing": ", ".join(d.isoformat() for d in window.missing) or "none",
    }


def _raw_data(spec: MLSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=_key(spec, "raw_data"),
        group_name=spec.name,
        kinds={"polars"},
        description=f"Source data of '{spec.name}' as loaded from {_source_text(spec)}",
    )
    def raw_data(
        context: dg.AssetExecutionContext, artifacts: ArtifactStore
    ) -> dg.Output[pl.DataFrame]:
        frame, source = _load_source(spec, context, artifacts)
        data_lib.check_columns_present(spec, frame)
        return dg.Output(
            frame,
            metadata={
                **source,
                "fingerprint": data_lib.fingerprint(frame),
                "schema": dg.MetadataValue.md(
                    report_lib.markdown_table(
                        pl.DataFrame(
                            {"column": frame.columns, "dtype": [str(t) for t in frame.dtypes]}
                        )
                    )
                ),
            },
        )

    return raw_data


def _features(spec: MLSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=_key(spec, "features"),
        group_name=spec.name,
        kinds={"polars"},
        ins={"raw_data": dg.AssetIn(_key(spec, "raw_data"))},
        description="Derived columns added, leaking/unused columns dropped, row ids assigned",
    )
    def features(
        context: dg.AssetExecutionContext, raw_data: pl.DataFrame
    ) -> dg.Output[pl.DataFrame]:
        frame = data_lib.build_features(spec, raw_data)
        if spec.task == "forecasting":
            frame = ts_lib.regularize(spec, frame.drop(data_lib.ROW_ID))
            frame = frame.with_row_index(data_lib.ROW_ID)
            context.add_output_metadata({"imputed_steps": int(frame[ts_lib.IMPUTED].sum())})
        counts = frame[spec.target].value_counts(sort=True).head(20)
        return dg.Output(
            frame,
            metadata={
                "fingerprint": data_lib.fingerprint(frame),
                "feature_columns": ", ".join(data_lib.feature_columns(spec, frame)),
                "target_distribution": dg.MetadataValue.md(report_lib.markdown_table(counts)),
                "target_nulls": frame[spec.target].null_count(),
            },
        )

    return features


def _raw_data_contract(spec: MLSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=_key(spec, "raw_data"),
        name="raw_data_contract",
        blocking=True,
        description="GX suite: row count bounds, required columns present, column types",
    )
    def raw_data_contract(
        context: dg.AssetCheckExecutionContext, raw_data: pl.DataFrame, artifacts: ArtifactStore
    ) -> dg.AssetCheckResult:
        learned = val_lib.LearnedContract.load(artifacts.contract_path(spec.name))
        exps = val_lib.build_expectations(spec, "raw_data", raw_data, learned)
        outcome = val_lib.run_expectations("raw_data", raw_data, exps)
        if not outcome.success:
            context.log.error(f"spec '{spec.name}' {outcome.summary()}")
        return _check_result(outcome, {"learned_contract": str(learned is not None)})

    return raw_data_contract


def _features_contract(spec: MLSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=_key(spec, "features"),
        name="features_contract",
        blocking=True,
        # The learned contract records the raw columns: their names are read, not the rows.
        additional_ins={
            "raw_data": dg.AssetIn(
                _key(spec, "raw_data"), metadata={SCHEMA_ONLY_METADATA_KEY: True}
            )
        },
        description="GX suite: target present and not null, label cardinality, ranges, "
        "categories, duplicate rows, the spec's own expectations",
    )
    def features_contract(
        context: dg.AssetCheckExecutionContext,
        features: pl.DataFrame,
        raw_data: pl.DataFrame,
        artifacts: ArtifactStore,
    ) -> dg.AssetCheckResult:
        path = artifacts.contract_path(spec.name)
        learned = val_lib.LearnedContract.load(path)
        exps = val_lib.build_expectations(spec, "features", features, learned)
        outcome = val_lib.run_expectations("features", features, exps)
        note = (
            f"held to contract learned from {learned.learned_from}"
            if learned
            else "no learned contract yet"
        )
        if outcome.success and learned is None and spec.validation.learn:
            val_lib.learn_contract(spec, raw_data.schema, features).save(path)
            note = f"contract learned from this data and saved to {path}"
        if not outcome.success:
            context.log.error(f"spec '{spec.name}' {outcome.summary()}")
        return _check_result(outcome, {"contract": note})

    return features_contract


def _split_checks(spec: MLSpec, frame: pl.DataFrame) -> list[split_lib.SplitCheck]:
    if spec.task != "forecasting":
        return [
            split_lib.check_disjoint(frame),
            split_lib.check_groups_disjoint(spec, frame),
            split_lib.check_proportions(spec, frame),
            split_lib.check_time_order(spec, frame),
        ]
    ok, detail, meta = ts_lib.check_folds_before_origin(spec, frame)
    return [
        split_lib.check_disjoint(frame),
        split_lib.check_time_order(spec, frame),
        split_lib.SplitCheck("backtest_before_origin", ok, detail, dict(meta)),
    ]


def _splits(spec: MLSpec) -> dg.AssetsDefinition:
    checks = [
        "splits_disjoint",
        "splits_groups_disjoint",
        "splits_proportions",
        "splits_time_order",
    ]
    if spec.task == "forecasting":
        checks = ["splits_disjoint", "splits_time_order", "backtest_before_origin"]

    @dg.asset(
        key=_key(spec, "splits"),
        group_name=spec.name,
        kinds={"polars"},
        ins={"features": dg.AssetIn(_key(spec, "features"))},
        check_specs=[
            dg.AssetCheckSpec(c, asset=_key(spec, "splits"), blocking=True) for c in checks
        ],
        description=f"{spec.split_strategy} train/validation/test assignment (column __split)",
    )
    def splits(context: dg.AssetExecutionContext, features: pl.DataFrame) -> Any:
        if spec.task == "forecasting":
            frame = ts_lib.assign_forecast_splits(spec, features)
        else:
            frame = split_lib.assign_splits(spec, features)
        split_column = frame[data_lib.SPLIT]
        yield dg.Output(
            frame,
            metadata={
                "strategy": spec.split_strategy,
                "seed": spec.split.seed,
                **{f"{s}_rows": n for s, n in split_lib.split_rows(frame).items()},
                **{
                    f"{s}_fingerprint": data_lib.fingerprint(frame, split_column == s)
                    for s in split_lib.SPLIT_NAMES
                },
            },
        )
        for result in _split_checks(spec, frame):
            yield dg.AssetCheckResult(
                check_name=result.name,
                passed=result.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=result.detail,
                metadata=dict(result.metadata),
            )

    return splits


def _lineage_tags(
    spec: MLSpec, context: dg.AssetExecutionContext, fingerprint: str
) -> dict[str, str]:
    return {
        "spec": spec.name,
        "spec_digest": spec.digest(),
        "code_version": code_version(),
        "git_commit": git_commit(),
        "data_fingerprint": fingerprint,
        "dagster_run_id": context.run_id,
    }


def _log_trained(
    spec: MLSpec,
    context: dg.AssetExecutionContext,
    mlflow: MlflowResource,
    model: model_lib.Model,
    prepared: model_lib.TrainingData,
    fingerprint: str,
) -> Trained:
    val = model_lib.validation_metrics(model, prepared, spec.all_metrics)
    train = prepared.train
    reference = train.sample(min(train.height, REFERENCE_ROWS), seed=spec.split.seed)
    tags = _lineage_tags(spec, context, fingerprint)
    if spec.time_column:  # later evaluations check this model never saw their test period
        seen = max(
            prepared.train[spec.time_column].max(), prepared.validation[spec.time_column].max()
        )
        tags[gate_lib.SEEN_UNTIL_TAG] = str(seen)
    logged = mlflow.tracker().log_model(
        spec.name,
        model,
        train,
        val,
        tags,
        reference=reference.select(model.features) if model.role == "candidate" else None,
    )
    context.log.info(f"{model.name}: validation {val}; MLflow run {logged.run_id}")
    return Trained(model, logged, val, fingerprint)


def _train_tabular(
    spec: MLSpec,
    context: dg.AssetExecutionContext,
    mlflow: MlflowResource,
    splits: pl.DataFrame,
    family: str,
) -> Trained:
    prepared = _prepare(spec, splits)
    if family == "glm":
        model: model_lib.Model = model_lib.train_glm(prepared, spec.candidates.config("glm"))
    else:
        metric = get_metric(spec.primary_metric)
        model = model_lib.train_lightgbm(prepared, spec.candidates.config("lightgbm"), metric)
    return _log_trained(
        spec, context, mlflow, model, prepared, split_lib.training_fingerprint(splits)
    )


def _history(spec: MLSpec, splits: pl.DataFrame, split: str = "train") -> pl.DataFrame:
    assert spec.time_column is not None
    rows = splits.filter(pl.col(data_lib.SPLIT) == split)
    return rows.drop(data_lib.SPLIT).sort(spec.time_column)


def _train_forecasters(
    spec: MLSpec,
    context: dg.AssetExecutionContext,
    mlflow: MlflowResource,
    splits: pl.DataFrame,
    models: list[fc_lib.Forecaster],
) -> list[Trained]:
    """Rolling-origin backtest of each model, then a fit on every row before the holdout."""
    series = _history(spec, splits)
    folds = ts_lib.backtest_folds(spec, series.height)
    fingerprint = split_lib.training_fingerprint(splits)
    out = []
    for model in models:
        backtest = fc_lib.backtest(model, series, folds)
        fitted = model.fit(series)
        val = fe_lib.validation_metrics(backtest, spec.all_metrics)
        logged = mlflow.tracker().log_model(
            spec.name,
            fitted,
            fitted.future_frame(5),
            val,
            _lineage_tags(spec, context, fingerprint),
        )
        context.log.info(f"{model.name}: backtest mean {val}; MLflow run {logged.run_id}")
        out.append(Trained(fitted, logged, val, fingerprint, backtest))
    return out


def _train_inputs(spec: MLSpec) -> dict[str, dg.AssetIn]:
    return {"splits": dg.AssetIn(_key(spec, "splits"), metadata=TRAIN_AND_VALIDATION)}


def _prepare(spec: MLSpec, splits: pl.DataFrame) -> model_lib.TrainingData:
    part = {s: splits.filter(pl.col(data_lib.SPLIT) == s) for s in ("train", "validation")}
    return model_lib.prepare(spec, part["train"], part["validation"])


def _baselines(spec: MLSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=_key(spec, "baselines"),
        group_name=spec.name,
        kinds={"python", "mlflow"},
        ins=_train_inputs(spec),
        description="Naive baselines every candidate must beat (prior/majority, mean/median, "
        "or naive/seasonal naive/drift/mean for forecasting)",
    )
    def baselines(
        context: dg.AssetExecutionContext, splits: pl.DataFrame, mlflow: MlflowResource
    ) -> dg.Output[list[Trained]]:
        if spec.task == "forecasting":
            trained = _train_forecasters(spec, context, mlflow, splits, fc_lib.baselines(spec))
        else:
            prepared = _prepare(spec, splits)
            fingerprint = split_lib.training_fingerprint(splits)
            trained = [
                _log_trained(spec, context, mlflow, m, prepared, fingerprint)
                for m in model_lib.train_baselines(prepared)
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
    library = {"glm": "statsmodels", "ets": "statsmodels", "sarimax": "statsmodels"}
    kinds = {library.get(family, family), "mlflow"}

    @dg.asset(
        key=_key(spec, f"candidate_{family}"),
        group_name=spec.name,
        kinds=kinds,
        ins=_train_inputs(spec),
        description=f"{family} candidate, fitted on train and tuned/selected on validation",
    )
    def candidate(
        context: dg.AssetExecutionContext, splits: pl.DataFrame, mlflow: MlflowResource
    ) -> dg.Output[Trained]:
        if spec.task == "forecasting":
            model = fc_lib.candidate(spec, family)
            trained = _train_forecasters(spec, context, mlflow, splits, [model])[0]
        else:
            trained = _train_tabular(spec, context, mlflow, splits, family)
        model = trained.model
        return dg.Output(
            trained,
            metadata={
                "model": model.name,
                "mlflow_run_id": trained.logged.run_id,
                f"validation_{spec.primary_metric}": trained.validation[spec.primary_metric],
                "params": dg.MetadataValue.json({k: str(v) for k, v in model.params.items()}),
                "data_fingerprint": trained.data_fingerprint,
            },
        )

    return candidate


def _champion_for_comparison(
    spec: MLSpec, tracker: Tracker, test: pl.DataFrame, context: dg.AssetExecutionContext
) -> tuple[model_lib.Model | None, str | None, tuple[gate_lib.Criterion, ...]]:
    """The current champion, if any, checked to score this test data."""
    try:
        ref = tracker.load_champion(spec.name)
    except ChampionLoadError as exc:
        context.log.error(str(exc))
        return None, exc.version, (gate_lib.champion_not_comparable(exc.version, exc.reason),)
    if ref is None:
        return None, None, ()
    seen = tracker.client.get_run(ref.run_id).data.tags.get(gate_lib.SEEN_UNTIL_TAG)
    if spec.time_column and seen is not None:
        test_start = test[spec.time_column].min()
        if gate_lib.saw_period(seen, test_start):
            context.log.error(
                f"current champion v{ref.version} was trained on data up to {seen}, which "
                f"reaches into this test split (from {test_start})"
            )
            return (
                None,
                ref.version,
                (gate_lib.champion_saw_test_period(ref.version, seen, test_start),),
            )
    model = dataclasses.replace(ref.model, name=f"champion_v{ref.version}")
    try:  # a schema the champion cannot read fails on any rows; evaluate scores them all
        model.predict(test.head(1000))
    except (pl.exceptions.PolarsError, KeyError, ValueError) as exc:
        context.log.error(f"current champion v{ref.version} cannot score this data: {exc}")
        return None, ref.version, (gate_lib.champion_not_comparable(ref.version, str(exc)[:300]),)
    return model, ref.version, ()


class StaleModelError(RuntimeError):
    """Models trained on other splits than the ones being evaluated."""


def _refuse_stale_models(spec: MLSpec, splits: pl.DataFrame, trained: list[Trained]) -> None:
    current = split_lib.training_fingerprint(splits)
    stale = [t.model.name for t in trained if t.data_fingerprint != current]
    if stale:
        raise StaleModelError(
            f"spec '{spec.name}': models {stale} were trained on data with another fingerprint "
            f"than the current splits ({current}); evaluating them could score them on rows "
            f"they learned from. Re-materialize the whole group: run job train_{spec.name}"
        )


def _evaluate_forecast(
    spec: MLSpec,
    tracker: Tracker,
    splits: pl.DataFrame,
    selected: Trained,
    baselines: list[Trained],
    best_base: str,
    context: dg.AssetExecutionContext,
) -> tuple[eval_lib.Evaluation, str | None, tuple[gate_lib.Criterion, ...]]:
    """Holdout evaluation; the current champion is refit on the same history to compare."""
    history, holdout = _history(spec, splits), _history(spec, splits, "test")
    champion, extra = None, ()
    try:
        ref = tracker.load_champion(spec.name)
        compared = ref.version if ref else None
    except ChampionLoadError as exc:
        ref, compared = None, exc.version
        extra = (gate_lib.champion_not_comparable(exc.version, exc.reason),)
        context.log.error(str(exc))
    if ref is not None:
        try:
            assert isinstance(ref.model, fc_lib.Forecaster)
            champion = dataclasses.replace(ref.model.fit(history), name=f"champion_v{ref.version}")
        except (AssertionError, ValueError, KeyError, pl.exceptions.PolarsError) as exc:
            context.log.error(f"current champion v{ref.version} cannot be refit: {exc}")
            extra = (gate_lib.champion_not_comparable(ref.version, str(exc)[:300]),)
    ev = fe_lib.evaluate_forecast(
        spec,
        history,
        holdout,
        (selected.model, selected.backtest),
        [(b.model, b.backtest) for b in baselines],
        best_base,
        champion,
    )
    return ev, compared, extra


def _time_index(spec: MLSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=_key(spec, "raw_data"),
        name="time_index",
        blocking=True,
        description="Regular time index at the declared frequency: no duplicated or off-grid "
        "timestamps, increasing order, gaps counted against forecast.max_gap_fraction",
    )
    def time_index(
        context: dg.AssetCheckExecutionContext, raw_data: pl.DataFrame
    ) -> dg.AssetCheckResult:
        column = spec.time_column
        assert column is not None
        dtype = raw_data.schema[column]
        if not (dtype.is_temporal() or dtype.is_integer()):
            problems = [
                f"time column '{column}' is {dtype}, not a date/time or integer; write "
                "ISO dates (YYYY-MM-DD) in the file"
            ]
            meta: dict[str, Any] = {}
        else:
            report = ts_lib.inspect_time_index(spec, raw_data)
            problems = report.problems(spec)
            meta = {k: v for k, v in vars(report).items() if isinstance(v, int | str | bool)}
            meta["gap_fraction"] = round(report.gap_fraction, 4)
        if problems:
            context.log.error(f"spec '{spec.name}' time index: " + " | ".join(problems))
        return dg.AssetCheckResult(
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            description=("; ".join(problems) or "regular time index")[:2000],
            metadata=meta,
        )

    return time_index


def _forecast(spec: MLSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=_key(spec, "forecast"),
        group_name=spec.name,
        kinds={"polars", "mlflow"},
        ins={
            "splits": dg.AssetIn(_key(spec, "splits"), metadata=ALL_SPLITS),
            "champion_model": dg.AssetIn(_key(spec, "champion_model")),
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


def _evaluation_report(spec: MLSpec) -> dg.AssetsDefinition:
    families = spec.families
    ins = {
        "splits": dg.AssetIn(_key(spec, "splits"), metadata=ALL_SPLITS),
        "baselines": dg.AssetIn(_key(spec, "baselines")),
        **{f"candidate_{f}": dg.AssetIn(_key(spec, f"candidate_{f}")) for f in families},
    }

    @dg.asset(
        key=_key(spec, "evaluation_report"),
        group_name=spec.name,
        kinds={"html", "mlflow"},
        ins=ins,
        description="Test-split evaluation of the validation-selected candidate, every baseline "
        "and the current champion: metrics with bootstrap CIs, paired tests, plots, gate decision",
    )
    def evaluation_report(
        context: dg.AssetExecutionContext,
        mlflow: MlflowResource,
        artifacts: ArtifactStore,
        **inputs: Any,
    ) -> dg.Output[gate_lib.EvaluationOutcome]:
        splits: pl.DataFrame = inputs["splits"]
        baselines: list[Trained] = inputs["baselines"]
        candidates = {
            inputs[f"candidate_{f}"].model.name: inputs[f"candidate_{f}"] for f in families
        }
        _refuse_stale_models(spec, splits, [*baselines, *candidates.values()])
        test = splits.filter(pl.col(data_lib.SPLIT) == "test")
        primary = spec.primary_metric
        order = spec.all_metrics
        selected = candidates[
            eval_lib.select_best({n: t.validation for n, t in candidates.items()}, order)
        ]
        best_base = eval_lib.select_best({b.model.name: b.validation for b in baselines}, order)
        tracker = mlflow.tracker()
        if spec.task == "forecasting":
            ev, champion_version, extra = _evaluate_forecast(
                spec, tracker, splits, selected, baselines, best_base, context
            )
        else:
            champion, champion_version, extra = _champion_for_comparison(
                spec, tracker, test, context
            )
            ev = eval_lib.evaluate(
                spec, test, selected.model, [b.model for b in baselines], best_base, champion
            )
        decision = gate_lib.decide(ev, spec.success_criteria, extra)
        lineage = eval_lib.Lineage(
            spec.name,
            spec.digest(),
            code_version(),
            selected.data_fingerprint,
            ev.test_fingerprint,
            selected.logged.run_id,
            spec.split_strategy,
            _split_rows(context, spec, test.height),
        )
        html = report_lib.render_html(ev, decision, lineage)
        path = artifacts.report_path(spec.name, context.run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html)
        card = report_lib.model_card(ev, decision, lineage, spec.description)
        cand, base = ev.candidate.metrics[primary], ev.baseline.metrics[primary]
        tracker.log_evaluation(
            selected.logged.run_id,
            metrics=eval_lib.tracking_metrics(ev),
            tags={
                "test_data_fingerprint": ev.test_fingerprint,
                "best_baseline": best_base,
                "gate_passed": str(decision.promote),
                "report_path": str(path),
            },
            files={"evaluation_report.html": html, "model_card.md": card},
        )
        outcome = gate_lib.EvaluationOutcome(
            ev, decision, lineage, selected, champion_version, str(path), card
        )
        url = tracker.run_url(mlflow.ui_url, selected.logged.experiment_id, selected.logged.run_id)
        return dg.Output(
            outcome,
            metadata={
                "summary": dg.MetadataValue.md(report_lib.markdown_table(ev.summary_table())),
                "selected_candidate": selected.model.name,
                "best_baseline": best_base,
                f"test_{primary}": cand.value,
                f"test_{primary}_ci": f"[{cand.lower:.4f}, {cand.upper:.4f}]",
                f"baseline_test_{primary}": base.value,
                "improvement_vs_baseline": ev.vs_baseline.fmt(),
                "improvement_vs_champion": f"{ev.vs_champion.fmt()} over v{champion_version}"
                if ev.vs_champion is not None
                else "no champion compared",
                "gate": dg.MetadataValue.md(decision.markdown()),
                "gate_passed": decision.promote,
                "report": dg.MetadataValue.path(str(path)),
                "mlflow_run": dg.MetadataValue.url(url),
                "data_fingerprint": lineage.data_fingerprint,
                "test_fingerprint": ev.test_fingerprint,
                "code_version": lineage.code_version,
            },
        )

    return evaluation_report


def _split_rows(context: dg.AssetExecutionContext, spec: MLSpec, test_rows: int) -> dict[str, int]:
    """Split sizes from the splits materialization's metadata (the test rows are counted here)."""
    event = context.instance.get_latest_materialization_event(_key(spec, "splits"))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    rows = {s: int(meta[f"{s}_rows"].value) for s in ("train", "validation") if f"{s}_rows" in meta}
    return {**rows, "test": test_rows}


def _champion_model(spec: MLSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=_key(spec, "champion_model"),
        group_name=spec.name,
        kinds={"mlflow"},
        ins={"evaluation_report": dg.AssetIn(_key(spec, "evaluation_report"))},
        check_specs=[dg.AssetCheckSpec("promotion_gate", asset=_key(spec, "champion_model"))],
        description=f"Registers the candidate as model '{spec.name}' and moves the 'champion' "
        "alias to it only if it passes every gate criterion",
    )
    def champion_model(
        context: dg.AssetExecutionContext,
        evaluation_report: gate_lib.EvaluationOutcome,
        mlflow: MlflowResource,
    ) -> Any:
        outcome, tracker = evaluation_report, mlflow.tracker()
        decision, selected = outcome.decision, outcome.selected
        tags = {
            "promoted": "pending",
            "data_fingerprint": selected.data_fingerprint,
            "code_version": outcome.lineage.code_version,
        }
        version = tracker.register(spec.name, selected.logged, outcome.model_card, tags)
        current = tracker.champion_version(spec.name)
        current_version = current[0] if current else None
        reasons = decision.reasons
        if decision.promote and current_version != outcome.compared_champion:
            reasons = [
                f"champion moved from v{outcome.compared_champion} to v{current_version} "
                "during this run; re-run to compare against the new champion"
            ]
        promoted = not reasons
        if promoted:
            tracker.set_champion(spec.name, version)
            context.log.info(f"'{spec.name}' v{version} is now champion")
        else:
            context.log.error(f"'{spec.name}' v{version} NOT promoted: " + "; ".join(reasons))
        tracker.client.set_model_version_tag(spec.name, version, "promoted", str(promoted))
        tracker.log_evaluation(
            selected.logged.run_id,
            {},
            {
                "promoted": str(promoted),
                "registered_version": version,
                "gate_reasons": "; ".join(reasons) or "all criteria passed",
            },
            {},
        )
        champion_now = version if promoted else current_version
        primary = spec.primary_metric
        yield dg.Output(
            {
                "registered_version": version,
                "promoted": promoted,
                "champion_version": champion_now,
                "reasons": reasons,
            },
            metadata={
                "registered_model": spec.name,
                "registered_version": version,
                "promoted": promoted,
                "champion_version": str(champion_now),
                "reasons": "; ".join(reasons) or "all criteria passed",
                f"test_{primary}": outcome.evaluation.candidate.metrics[primary].value,
                "model_card": dg.MetadataValue.md(outcome.model_card),
            },
        )
        yield dg.AssetCheckResult(
            check_name="promotion_gate",
            passed=promoted,
            severity=dg.AssetCheckSeverity.ERROR,
            description="promoted to champion"
            if promoted
            else "NOT promoted: " + "; ".join(reasons),
            metadata={
                "gate": dg.MetadataValue.md(decision.markdown()),
                "champion_version": str(champion_now),
            },
        )

    return champion_model


def _predictions(spec: MLSpec) -> dg.AssetsDefinition:
    monitoring = spec.monitoring
    assert monitoring is not None

    @dg.asset(
        key=_key(spec, "predictions"),
        group_name=spec.name,
        kinds={"polars", "mlflow"},
        partitions_def=dg.DailyPartitionsDefinition(start_date=monitoring.start_date.isoformat()),
        deps=[_key(spec, "champion_model")],
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
        scores = ref.model.predict(rows)
        out = rows.with_columns(
            pl.Series("score", scores), pl.lit(ref.version).alias("model_version")
        )
        if spec.task == "classification":
            out = out.with_columns(pl.Series("predicted_label", ref.model.labels(scores)))
        return dg.Output(
            out,
            metadata={
                "model_version": ref.version,
                "incoming": dg.MetadataValue.path(str(path)),
                "scored_rows": out.height,
                "mean_score": float(scores.mean()) if len(scores) else float("nan"),
            },
        )

    return predictions


def _drift_report(spec: MLSpec) -> dg.AssetsDefinition:
    monitoring = spec.monitoring
    assert monitoring is not None

    @dg.asset(
        key=_key(spec, "drift_report"),
        group_name=spec.name,
        kinds={"polars", "mlflow"},
        partitions_def=dg.DailyPartitionsDefinition(start_date=monitoring.start_date.isoformat()),
        ins={"predictions": dg.AssetIn(_key(spec, "predictions"))},
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
        scores = (scored_by.model.predict(reference), predictions["score"].to_numpy())
        metric = get_metric(spec.primary_metric)
        run_metrics = tracker.client.get_run(scored_by.run_id).data.metrics
        ci_keys = [f"test_{metric.name}_ci_lower", f"test_{metric.name}_ci_upper"]
        champion_ci = (
            (run_metrics[ci_keys[0]], run_metrics[ci_keys[1]])
            if all(k in run_metrics for k in ci_keys)
            else None
        )
        result = drift_lib.verdict(
            table,
            drift_lib.psi_numeric(*scores),
            eval_lib.realized_performance(spec, predictions, scored_by.model, scores[1]),
            champion_ci,
            metric.greater_is_better,
            monitoring.max_drifted_share,
            monitoring.max_psi,
        )
        plot = artifacts.drift_plot_path(spec.name, day)
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_text(
            report_lib.render_drift_html(
                f"Drift report: {spec.name} {day} (model v{scored_by.version})",
                result,
                table,
                reference,
                predictions,
                scores,
            )
        )
        if result.retrain:
            context.log.warning(f"'{spec.name}' {day}: retraining recommended: {result.reasons}")
        realized = result.realized
        return dg.Output(
            table.with_columns(pl.lit(scored_by.version).alias("model_version")),
            metadata={
                "model_version": scored_by.version,
                "features_by_drift": dg.MetadataValue.md(report_lib.markdown_table(table)),
                "drift_plot": dg.MetadataValue.path(str(plot)),
                "drifted_features": ", ".join(result.drifted_features) or "none",
                "drifted_share": result.drifted_share,
                "max_psi": result.max_psi,
                "prediction_psi": result.prediction_psi,
                f"realized_{metric.name}": realized.value if realized else float("nan"),
                f"realized_{metric.name}_ci": realized.fmt() if realized else "no labels yet",
                "champion_test_ci": f"[{champion_ci[0]:.4f}, {champion_ci[1]:.4f}]"
                if champion_ci
                else "not logged",
                "retrain_recommended": result.retrain,
                "reasons": "; ".join(result.reasons) or "within thresholds",
            },
        )

    return drift_report


SCORING_LOOKBACK_DAYS = 7


def _daily_scoring(spec: MLSpec, job: Any) -> dg.ScheduleDefinition:
    """Every hour, score and monitor each of the last days whose incoming file has arrived and
    whose partition is not scored yet (oldest first); a late file is picked up on the next tick.
    Run keys keep a day from being launched twice."""
    monitoring = spec.monitoring
    assert monitoring is not None
    key = _key(spec, "predictions")

    @dg.schedule(
        name=f"score_{spec.name}_schedule",
        job=job,
        cron_schedule="0 * * * *",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Hourly: score and report drift for each of the last "
        f"{SCORING_LOOKBACK_DAYS} days of '{spec.name}' whose file has arrived",
    )
    def daily_scoring(context: dg.ScheduleEvaluationContext, artifacts: ArtifactStore) -> Any:
        now = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        scored = context.instance.get_materialized_partitions(key)
        days = [now.date() - dt.timedelta(days=n) for n in range(SCORING_LOOKBACK_DAYS, 0, -1)]
        due = [d.isoformat() for d in days if d >= monitoring.start_date]
        requests = [
            dg.RunRequest(run_key=f"{spec.name}:score:{day}", partition_key=day)
            for day in due
            if day not in scored
            and artifacts.incoming_path(spec.name, monitoring.incoming, day).exists()
        ]
        if requests:
            return requests
        if not due:
            return dg.SkipReason(f"no day since monitoring.start_date {monitoring.start_date} yet")
        latest = artifacts.incoming_path(spec.name, monitoring.incoming, due[-1])
        if due[-1] in scored:
            return dg.SkipReason(f"every day up to {due[-1]} with a file is scored")
        return dg.SkipReason(f"nothing new to score: waiting for {due[-1]} at {latest}")

    return daily_scoring


def _retrain_on_drift(spec: MLSpec) -> dg.SensorDefinition:
    """Requests train_<spec> when the newest drift report recommends it: one run per drifted
    day (run key), at most one per cooldown, with the triggering numbers as run tags."""
    monitoring = spec.monitoring
    assert monitoring is not None
    key = _key(spec, "drift_report")

    @dg.sensor(
        name=f"retrain_{spec.name}_on_drift",
        job_name=f"train_{spec.name}",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
        description=f"Retrain '{spec.name}' when a daily drift report passes the spec's thresholds",
    )
    def retrain_on_drift(context: dg.SensorEvaluationContext) -> Any:
        event = context.instance.get_latest_materialization_event(key)
        if event is None or event.asset_materialization is None:
            return dg.SkipReason("no drift report yet")
        report = event.asset_materialization
        meta = {k: getattr(v, "value", v) for k, v in report.metadata.items()}
        if not meta.get("retrain_recommended"):
            return dg.SkipReason(f"{report.partition}: {meta.get('reasons', 'within thresholds')}")
        newest = max(context.instance.get_materialized_partitions(key), default=None)
        if newest is not None and str(report.partition) < newest:
            # A re-scored past day says nothing about today; retraining on its window would
            # train on stale data.
            return dg.SkipReason(
                f"{report.partition} is a re-run of a past day (newest report: {newest}); "
                "drift retraining follows the newest day only"
            )
        cursor = json.loads(context.cursor) if context.cursor else {}
        if cursor.get("partition") == report.partition:
            return dg.SkipReason(f"retraining for {report.partition} already requested")
        waited = (event.timestamp - cursor.get("requested_at", 0.0)) / 3600
        if cursor and waited < monitoring.cooldown_hours:
            return dg.SkipReason(
                f"cooldown: {waited:.1f} h since the last drift retraining "
                f"(< {monitoring.cooldown_hours} h)"
            )
        context.update_cursor(
            json.dumps({"partition": report.partition, "requested_at": event.timestamp})
        )
        return dg.RunRequest(
            run_key=f"{spec.name}:drift:{report.partition}",
            tags={
                "ml_assets/trigger": "drift",
                "ml_assets/partition": str(report.partition),
                # Retrain on the window ending at the drifted day, whatever arrives meanwhile.
                WINDOW_END_TAG: str(report.partition),
                "ml_assets/drifted_features": str(meta.get("drifted_features"))[:200],
                "ml_assets/max_psi": f"{float(meta.get('max_psi', 0.0)):.4f}",
                "ml_assets/drifted_share": f"{float(meta.get('drifted_share', 0.0)):.4f}",
                "ml_assets/reasons": str(meta.get("reasons"))[:250],
                "ml_assets/champion_version": str(meta.get("model_version")),
            },
        )

    return retrain_on_drift
