"""A candidate that does not earn promotion is registered, reported loudly, and not promoted."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from ml_assets.cli import spec_summary
from ml_assets.definitions import build_definitions
from ml_assets.lib.spec import load_spec
from ml_assets.lib.tracking import Tracker
from ml_assets_tests.helpers import check_results, mlflow_client, run_job

NOISE_SPEC = """
name: noise
task: classification
source: {path: noise.csv}
target: label
candidates:
  lightgbm: {budget: 2}
validation: {min_rows: 100}
evaluation: {bootstrap_samples: 200}
"""


def test_noise_candidate_fails_the_gate_and_gets_no_alias(home: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = 600
    pl.DataFrame(
        {"a": rng.normal(size=rows), "b": rng.normal(size=rows), "label": rng.integers(0, 2, rows)}
    ).write_csv(tmp_path / "noise.csv")
    (tmp_path / "noise.yaml").write_text(NOISE_SPEC)

    result = run_job(
        build_definitions(str(tmp_path)), "train_noise", dg.DagsterInstance.ephemeral()
    )

    assert result.success  # the pipeline worked; the model simply did not earn promotion
    gate = check_results(result)["promotion_gate"]
    assert not gate.passed
    assert gate.severity == dg.AssetCheckSeverity.ERROR
    assert "beats_baseline" in (gate.description or "")
    client = mlflow_client()
    version = client.get_model_version("noise", "1")
    assert version.aliases == []
    assert version.tags["promoted"] == "False"
    lines = spec_summary(load_spec(tmp_path / "noise.yaml"), Tracker(client.tracking_uri))
    assert "NOT PROMOTED" in lines[0] and "there is no champion" in lines[0]


def test_models_from_other_splits_are_refused(home: Path, tmp_path: Path) -> None:
    """A partial re-run with new splits must not score old models on rows they learned from."""
    rng = np.random.default_rng(3)
    rows = 600
    x = rng.normal(size=rows)
    pl.DataFrame(
        {"a": x, "b": rng.normal(size=rows), "label": (x + rng.normal(size=rows) > 0).astype(int)}
    ).write_csv(tmp_path / "noise.csv")
    (tmp_path / "noise.yaml").write_text(NOISE_SPEC)
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(build_definitions(str(tmp_path)), "train_noise", instance).success
    champion = mlflow_client().get_model_version_by_alias("noise", "champion").version

    (tmp_path / "noise.yaml").write_text(NOISE_SPEC + "split: {seed: 7}\n")
    defs = build_definitions(str(tmp_path))
    partial = [
        dg.AssetKey(["noise", s])
        for s in ("raw_data", "features", "splits", "evaluation_report", "champion_model")
    ]
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(partial))
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    message = str(failures[0].event_specific_data.error.cause.message)
    assert "another fingerprint" in message and "train_noise" in message
    assert mlflow_client().get_model_version_by_alias("noise", "champion").version == champion
