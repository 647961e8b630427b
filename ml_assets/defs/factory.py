"""The asset factory: one spec in, one group of assets, checks, jobs, schedules and sensors
out. It only wires the stages together; each stage lives in its own module.

Assets are adapters: they load inputs, call ``ml_assets.lib`` and turn results into metadata.
Keys are ``<spec>/<stage>``; the test split reaches only ``evaluation_report``.
"""

import dagster as dg

from ml_assets.defs import executors
from ml_assets.defs.data import data_assets
from ml_assets.defs.evaluation import evaluation_asset
from ml_assets.defs.monitoring import monitoring_defs, scoring_keys
from ml_assets.defs.promotion import champion_asset
from ml_assets.defs.rollback import rollback_job
from ml_assets.defs.scoring import forecast_asset
from ml_assets.defs.splits import splits_asset
from ml_assets.defs.training import training_assets
from ml_assets.lib import names
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.tasks import task_for


def build_spec_defs(spec: MLSpec) -> dg.Definitions:
    """Every definition of one spec: its asset group, blocking checks and ``train_<spec>`` job,
    plus the monitoring loop when the spec has one."""
    assets, checks = data_assets(spec)
    assets += [
        splits_asset(spec),
        *training_assets(spec),
        evaluation_asset(spec),
        champion_asset(spec),
    ]
    if task_for(spec).forecasts:
        assets.append(forecast_asset(spec))
    train_job = dg.define_asset_job(
        names.train_job(spec.name),
        selection=training_selection(spec),
        description=f"Validate, split, train, evaluate and gate the '{spec.name}' spec",
        config=executors.job_config(),
        tags={names.SPEC_TAG: spec.name},
    )
    jobs = [train_job, rollback_job(spec)]
    training = dg.Definitions(assets=assets, asset_checks=checks, jobs=jobs)
    return dg.Definitions.merge(training, monitoring_defs(spec, train_job))


def training_selection(spec: MLSpec) -> dg.AssetSelection:
    """The spec's group without its daily-partitioned scoring assets."""
    group = dg.AssetSelection.groups(spec.name)
    daily = scoring_keys(spec)
    return group - dg.AssetSelection.assets(*daily) if daily else group
