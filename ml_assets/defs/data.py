"""Data stage: the source rows, the features built from them, and the checks that guard both
(GX data contracts, and for forecasting the regularity of the time index)."""

import datetime as dt
from typing import Any

import dagster as dg
import polars as pl

from ml_assets.defs.resources import SCHEMA_ONLY_METADATA_KEY, ArtifactStore
from ml_assets.defs.shared import check_result, key
from ml_assets.lib import data as data_lib
from ml_assets.lib import report as report_lib
from ml_assets.lib import timeseries as ts_lib
from ml_assets.lib import validation as val_lib
from ml_assets.lib.names import WINDOW_END_TAG
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.tasks import task_for


def data_assets(spec: MLSpec) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    """The raw_data and features assets and the blocking checks on them."""
    checks = [_raw_data_contract(spec), _features_contract(spec)]
    if task_for(spec).checks_time_index:
        checks.append(_time_index(spec))
    return [_raw_data(spec), _features(spec)], checks


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
        key=key(spec, "raw_data"),
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
        key=key(spec, "features"),
        group_name=spec.name,
        kinds={"polars"},
        ins={"raw_data": dg.AssetIn(key(spec, "raw_data"))},
        description="Derived columns added, leaking/unused columns dropped, row ids assigned",
    )
    def features(
        context: dg.AssetExecutionContext, raw_data: pl.DataFrame
    ) -> dg.Output[pl.DataFrame]:
        frame, shaped = task_for(spec).shape_features(spec, data_lib.build_features(spec, raw_data))
        if shaped:
            context.add_output_metadata(shaped)
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
        asset=key(spec, "raw_data"),
        name="raw_data_contract",
        blocking=True,
        description="GX suite: row count bounds, required columns present, column types",
    )
    def raw_data_contract(
        context: dg.AssetCheckExecutionContext, raw_data: pl.DataFrame, artifacts: ArtifactStore
    ) -> dg.AssetCheckResult:
        learned = val_lib.LearnedContract.load(artifacts.contract_path(spec.name))
        outcome = val_lib.validate(spec, "raw_data", raw_data, learned)
        if not outcome.success:
            context.log.error(f"spec '{spec.name}' {outcome.summary()}")
        return check_result(outcome, {"learned_contract": str(learned is not None)})

    return raw_data_contract


def _features_contract(spec: MLSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key(spec, "features"),
        name="features_contract",
        blocking=True,
        # The learned contract records the raw columns: their names are read, not the rows.
        additional_ins={
            "raw_data": dg.AssetIn(key(spec, "raw_data"), metadata={SCHEMA_ONLY_METADATA_KEY: True})
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
        outcome = val_lib.validate(spec, "features", features, learned)
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
        elif outcome.warnings:
            context.log.warning(f"spec '{spec.name}' {outcome.summary()}")
        return check_result(outcome, {"contract": note})

    return features_contract


def _time_index(spec: MLSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key(spec, "raw_data"),
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
