"""Names that two parts of the project must spell alike: Dagster job, sensor and schedule
names (the definitions and the simulation), run tags (the sensor and the raw-data asset) and
MLflow tags (the assets that write them and the CLI that reads them)."""

from __future__ import annotations

# Dagster run tags
SPEC_TAG = "ml_assets/spec"
TRIGGER_TAG = "ml_assets/trigger"  # drift or weekly
PARTITION_TAG = "ml_assets/partition"  # the drifted day that triggered a retraining
WINDOW_END_TAG = "ml_assets/window_end"  # a recent_days source ends its window on this date

# The tags the Dagster daemon puts on a sensor's runs, and reads back to launch a run key once;
# the demo's simulation sets them too, so the daemon that takes over repeats none of its runs.
DAGSTER_RUN_KEY_TAG = "dagster/run_key"
DAGSTER_SENSOR_TAG = "dagster/sensor_name"

# MLflow tags on a candidate's run and registered version
PROMOTED_TAG = "promoted"  # "True", "False", or "pending" while the gate is being applied
GATE_REASONS_TAG = "gate_reasons"
REPORT_PATH_TAG = "report_path"
BEST_BASELINE_TAG = "best_baseline"
MODEL_NAME_TAG = "model_name"
DATA_FINGERPRINT_TAG = "data_fingerprint"
CODE_VERSION_TAG = "code_version"
SPEC_DIGEST_TAG = "spec_digest"
SHADOW_TAG = "shadow_comparison"  # what the shadow comparison decided for a challenger
SEEN_UNTIL_TAG = "data_until"  # the latest time among a model's training rows


def promotion_pool(spec: str) -> str:
    """The Dagster concurrency pool of a spec's promotion step (one slot: deploy/*/dagster.yaml)."""
    return f"ml_assets_promotion_{spec}"


def train_job(spec: str) -> str:
    return f"train_{spec}"


def rollback_job(spec: str) -> str:
    return f"rollback_{spec}"


def score_job(spec: str) -> str:
    return f"score_{spec}"


def scoring_sensor(spec: str) -> str:
    return f"score_{spec}_on_arrival"


def weekly_retrain_schedule(spec: str) -> str:
    return f"weekly_retrain_{spec}"


def drift_sensor(spec: str) -> str:
    return f"retrain_{spec}_on_drift"
