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
