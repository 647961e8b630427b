"""Shadow stage: each day the challenger scores the rows the champion scored, apart from them
(never served), and the comparison over the shadow days so far decides, by the spec's
``monitoring.shadow_days``, whether it replaces the champion."""

import warnings
from typing import Any

import dagster as dg
import polars as pl

from ml_assets.defs.resources import MAY_BE_EMPTY_METADATA_KEY, MlflowResource
from ml_assets.defs.shared import daily_partitions, key
from ml_assets.lib import data as data_lib
from ml_assets.lib import report as report_lib
from ml_assets.lib import shadow as shadow_lib
from ml_assets.lib.names import CODE_VERSION_TAG, DATA_FINGERPRINT_TAG, promotion_pool
from ml_assets.lib.provenance import code_version
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.tasks import task_for
from ml_assets.lib.tracking import CHALLENGER_ALIAS, Tracker

# The comparison reads the shadow days of the newest (champion, challenger) pair among the
# newest this many days (or monitoring.shadow_days, if more).
SHADOW_LOOKBACK_DAYS = 28


def shadow_keys(spec: MLSpec) -> list[dg.AssetKey]:
    return [key(spec, "shadow_predictions"), key(spec, "shadow_comparison")]


def shadow_assets(spec: MLSpec) -> list[dg.AssetsDefinition]:
    return [_shadow_predictions(spec), _shadow_comparison(spec)]


def lookback_days(spec: MLSpec) -> int:
    assert spec.monitoring is not None
    return max(SHADOW_LOOKBACK_DAYS, spec.monitoring.shadow_days or 0)


def _shadow_predictions(spec: MLSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=key(spec, "shadow_predictions"),
        group_name=spec.name,
        kinds={"polars", "mlflow"},
        partitions_def=daily_partitions(spec),
        ins={"predictions": dg.AssetIn(key(spec, "predictions"))},
        output_required=False,
        description=f"The day's rows scored by models:/{spec.name}@{CHALLENGER_ALIAS} beside "
        "the champion's scores, kept apart and never served; nothing on a day without a "
        "challenger",
    )
    def shadow_predictions(
        context: dg.AssetExecutionContext, predictions: pl.DataFrame, mlflow: MlflowResource
    ) -> Any:
        tracker = mlflow.tracker()
        champion = str(predictions["model_version"][0])
        version = tracker.alias_version(spec.name, CHALLENGER_ALIAS)
        if version is None or version == champion:
            context.log.info(f"'{spec.name}' has no challenger: no shadow scoring")
            return
        # Read after the challenger's version (the champion's came with the predictions), so
        # an alias moving in between labels this day with the newer pairing: when the move
        # changed a version, apply sees the versions differ and acts on nothing; when it set
        # the same version again, this one day counts in the new pairing (reads are not atomic).
        pair_id = tracker.pair_id(spec.name)
        challenger = tracker.load_version(spec.name, version)
        rows = shadow_lib.unscored(predictions)
        scored = task_for(spec).score(spec, challenger.model, version, rows)
        frame = shadow_lib.beside(predictions, scored, context.partition_key, pair_id)
        yield dg.Output(
            frame,
            metadata={
                "challenger_version": version,
                "champion_version": champion,
                "scored_rows": frame.height,
                "mean_score": round(float(frame["score"].mean() or 0.0), 4),
                "champion_mean_score": round(float(predictions["score"].mean() or 0.0), 4),
            },
        )

    return shadow_predictions


def _shadow_comparison(spec: MLSpec) -> dg.AssetsDefinition:
    monitoring = spec.monitoring
    assert monitoring is not None
    window = lookback_days(spec)

    @dg.asset(
        key=key(spec, "shadow_comparison"),
        group_name=spec.name,
        kinds={"mlflow"},
        partitions_def=daily_partitions(spec),
        output_required=False,
        # Promoting or retiring the challenger moves aliases: one at a time, as promotions.
        pool=promotion_pool(spec.name),
        ins={
            "shadow": dg.AssetIn(
                key(spec, "shadow_predictions"),
                partition_mapping=_window(window),
                metadata={MAY_BE_EMPTY_METADATA_KEY: True},  # no challenger on those days
            )
        },
        description="Challenger against champion on the shadow days so far: both realized "
        "metrics with CIs and their paired improvement; with monitoring.shadow_days, the "
        "challenger is promoted (CI above 0) or retired (CI below 0) after that many days",
    )
    def shadow_comparison(
        context: dg.AssetExecutionContext, shadow: pl.DataFrame, mlflow: MlflowResource
    ) -> Any:
        tracker = mlflow.tracker()
        today = (
            shadow.filter(pl.col(shadow_lib.DAY_COLUMN) == context.partition_key)
            if shadow_lib.DAY_COLUMN in shadow.columns
            else shadow
        )
        if today.is_empty():
            context.log.info(
                f"'{spec.name}' {context.partition_key}: no shadow scoring that day (no "
                "challenger): nothing to compare"
            )
            return
        paired = shadow_lib.pair(today)
        frame = shadow_lib.of_pair(shadow, paired)
        champion = tracker.load_version(spec.name, paired.champion)
        challenger = tracker.load_version(spec.name, paired.challenger)
        comparison = shadow_lib.compare(spec, frame, champion.model, challenger.model)
        decision = shadow_lib.decide(comparison, monitoring.shadow_days, spec.success_criteria)
        done = shadow_lib.apply(
            tracker, spec.name, comparison, decision, f"Dagster run {context.run_id}", paired.id
        )
        log = context.log.warning if decision.action in ("promote", "retire") else context.log.info
        log(f"'{spec.name}' {context.partition_key}: {comparison.line()}; {done}")
        _log_to_mlflow(tracker, spec, context, comparison, done, data_lib.fingerprint(frame))
        yield dg.Output(comparison.per_day, metadata=_metadata(comparison, decision, done))

    return shadow_comparison


def _window(days: int) -> dg.TimeWindowPartitionMapping:
    """The day and the ``days - 1`` before it; the first days of the partitions have fewer."""
    with warnings.catch_warnings():
        # Beta in Dagster 1.13, and what lets the first days map onto days before the start.
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.TimeWindowPartitionMapping(
            start_offset=-(days - 1), allow_nonexistent_upstream_partitions=True
        )


def _metadata(
    comparison: shadow_lib.ShadowComparison, decision: shadow_lib.ShadowDecision, done: str
) -> dict[str, Any]:
    m = comparison.metric

    def fmt(found: Any) -> str:
        return found.fmt() if found is not None else "too few labels yet"

    return {
        "champion_version": comparison.champion_version,
        "challenger_version": comparison.challenger_version,
        "shadow_days": len(comparison.days),
        "labelled_days": len(comparison.labelled_days),
        "labelled_rows": comparison.labelled,
        f"champion_realized_{m}": fmt(comparison.champion),
        f"challenger_realized_{m}": fmt(comparison.challenger),
        f"paired_improvement_{m}": fmt(comparison.improvement),
        "decision": decision.action,
        "outcome": done,
        "summary": comparison.line(),
        "gate": dg.MetadataValue.md(decision.gate.markdown()),
        "per_day": dg.MetadataValue.md(report_lib.markdown_table(comparison.per_day)),
    }


def _log_to_mlflow(
    tracker: Tracker,
    spec: MLSpec,
    context: dg.AssetExecutionContext,
    comparison: shadow_lib.ShadowComparison,
    done: str,
    fingerprint: str,
) -> None:
    """One run per comparison in the spec's monitoring experiment, what `cli summary` reads."""
    m, metrics = comparison.metric, {}
    for name, found in (
        (f"champion_realized_{m}", comparison.champion),
        (f"challenger_realized_{m}", comparison.challenger),
        (f"improvement_{m}", comparison.improvement),
    ):
        if found is not None:
            metrics |= {name: found.value, f"{name}_ci_lower": found.lower}
            metrics[f"{name}_ci_upper"] = found.upper
    metrics |= {"labelled_rows": comparison.labelled, "shadow_days": len(comparison.days)}
    tracker.log_monitoring(
        f"{spec.name}-monitoring",
        f"{spec.name} · shadow · {context.partition_key} · v{comparison.challenger_version} "
        f"vs v{comparison.champion_version}",
        metrics,
        {
            "spec": spec.name,
            "kind": shadow_lib.MONITORING_KIND,
            "day": context.partition_key,
            "champion_version": comparison.champion_version,
            "challenger_version": comparison.challenger_version,
            "summary": comparison.line()[:5000],
            "outcome": done[:5000],
            CODE_VERSION_TAG: code_version(),
            DATA_FINGERPRINT_TAG: fingerprint,
            "dagster_run_id": context.run_id,
        },
        {},
    )
