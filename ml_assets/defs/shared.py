"""What the stage modules share: asset keys, split-filtered inputs, check results, lineage."""

import datetime as dt
from typing import Any

import dagster as dg
import polars as pl

from ml_assets.defs.resources import SPLITS_METADATA_KEY, ArtifactStore, default_data_dir
from ml_assets.lib import data as data_lib
from ml_assets.lib import report as report_lib
from ml_assets.lib import validation as val_lib
from ml_assets.lib.names import CODE_VERSION_TAG, DATA_FINGERPRINT_TAG, SPEC_DIGEST_TAG
from ml_assets.lib.provenance import code_version, git_commit
from ml_assets.lib.spec import MLSpec

TRAIN_AND_VALIDATION = {SPLITS_METADATA_KEY: ["train", "validation"]}
# The report reads every split: test rows to score, the others to check that the models were
# trained on exactly these splits (and, for forecasting, for the MASE scale and plots).
ALL_SPLITS = {SPLITS_METADATA_KEY: ["train", "validation", "test"]}


def key(spec: MLSpec, stage: str) -> dg.AssetKey:
    """Every asset of a spec is keyed ``<spec>/<stage>``."""
    return dg.AssetKey([spec.name, stage])


def monitoring_start(spec: MLSpec) -> dt.date:
    """The first daily partition: ``monitoring.start_date``, else the earliest file in the
    incoming folder now (the definitions load again when the stream restarts), else today."""
    assert spec.monitoring is not None
    if spec.monitoring.start_date is not None:
        return spec.monitoring.start_date
    incoming = ArtifactStore(base_dir=default_data_dir()).incoming_dir(
        spec.name, spec.monitoring.incoming
    )
    days = data_lib.day_files(incoming)
    return next(iter(days), dt.datetime.now(dt.UTC).date())


def daily_partitions(spec: MLSpec) -> dg.DailyPartitionsDefinition:
    """One partition per day up to and including today: a day's file is that day's snapshot,
    scored as soon as it arrives."""
    return dg.DailyPartitionsDefinition(start_date=monitoring_start(spec).isoformat(), end_offset=1)


def train_inputs(spec: MLSpec) -> dict[str, dg.AssetIn]:
    """The splits without the test rows: what every model-fitting asset reads."""
    return {"splits": dg.AssetIn(key(spec, "splits"), metadata=TRAIN_AND_VALIDATION)}


def _md_failures(failures: list[val_lib.Failure], none: str) -> str:
    if not failures:
        return none
    frame = pl.DataFrame(
        [
            {"expectation": f.expectation, "column": f.column or "(table)", "detail": f.detail}
            for f in failures
        ]
    )
    return report_lib.markdown_table(frame)


def check_result(outcome: val_lib.ValidationOutcome, extra: dict[str, Any]) -> dg.AssetCheckResult:
    """A blocking data-contract check's result, failures tabulated in its metadata."""
    return dg.AssetCheckResult(
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.summary()[:2000],
        metadata={
            "expectations_evaluated": outcome.evaluated,
            "expectations_failed": len(outcome.failures),
            "rows": outcome.rows,
            "failures": dg.MetadataValue.md(
                _md_failures(outcome.failures, "all expectations passed")
            ),
            # Unexpected rows within a learned tolerance: reported, not blocking.
            "warnings": dg.MetadataValue.md(_md_failures(outcome.warnings, "none")),
            **extra,
        },
    )


def lineage_tags(
    spec: MLSpec, context: dg.AssetExecutionContext, fingerprint: str, dagster_ui_url: str
) -> dict[str, str]:
    """MLflow run tags that trace a model to its spec, code, data and Dagster run; the run's
    description (MLflow's note) links to the Dagster run."""
    run_url = f"{dagster_ui_url.rstrip('/')}/runs/{context.run_id}"
    return {
        "dagster_run_url": run_url,
        "mlflow.note.content": f"Trained by Dagster run [{context.run_id}]({run_url}) "
        f"of job `{context.job_name}`, spec `{spec.name}`.",
        "spec": spec.name,
        SPEC_DIGEST_TAG: spec.digest(),
        CODE_VERSION_TAG: code_version(),
        "git_commit": git_commit(),
        DATA_FINGERPRINT_TAG: fingerprint,
        "dagster_run_id": context.run_id,
    }
