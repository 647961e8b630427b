"""Splits stage: the train/validation/test assignment and the blocking checks on it."""

from typing import Any

import dagster as dg
import polars as pl

from ml_assets.defs.shared import key
from ml_assets.lib import data as data_lib
from ml_assets.lib import splits as split_lib
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.tasks import task_for


def splits_asset(spec: MLSpec) -> dg.AssetsDefinition:
    task = task_for(spec)

    @dg.asset(
        key=key(spec, "splits"),
        group_name=spec.name,
        kinds={"polars"},
        ins={"features": dg.AssetIn(key(spec, "features"))},
        check_specs=[
            dg.AssetCheckSpec(c, asset=key(spec, "splits"), blocking=True)
            for c in task.split_check_names
        ],
        description=f"{spec.split_strategy} train/validation/test assignment (column __split)",
    )
    def splits(context: dg.AssetExecutionContext, features: pl.DataFrame) -> Any:
        frame = task.assign_splits(spec, features)
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
        for result in task.split_checks(spec, frame):
            yield dg.AssetCheckResult(
                check_name=result.name,
                passed=result.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=result.detail,
                metadata=dict(result.metadata),
            )

    return splits
