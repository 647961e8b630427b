"""A candidate that does not earn promotion is registered, reported loudly, and not promoted."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from ml_assets.cli import spec_summary
from ml_assets.definitions import build_definitions
from ml_assets.lib.alias_history import moves
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


def _learnable_spec(directory: Path) -> None:
    """The 'noise' spec over 600 rows whose label does follow feature a."""
    rng = np.random.default_rng(3)
    rows = 600
    x = rng.normal(size=rows)
    pl.DataFrame(
        {"a": x, "b": rng.normal(size=rows), "label": (x + rng.normal(size=rows) > 0).astype(int)}
    ).write_csv(directory / "noise.csv")
    (directory / "noise.yaml").write_text(NOISE_SPEC)


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
    assert "beats_baseline" in version.tags["gate_reasons"]  # why, on the version itself
    lines = spec_summary(load_spec(tmp_path / "noise.yaml"), Tracker(client.tracking_uri))
    assert "NOT PROMOTED" in lines[0] and "there is no champion" in lines[0]


def test_models_from_other_splits_are_refused(home: Path, tmp_path: Path) -> None:
    """A partial re-run with new splits must not score old models on rows they learned from."""
    _learnable_spec(tmp_path)
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


def test_rerunning_champion_model_alone_registers_nothing_again(home: Path, tmp_path: Path) -> None:
    """A retried or re-executed champion_model step finds its candidate run registered
    already: no second version, and the registry's record stands."""
    _learnable_spec(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(str(tmp_path))
    assert run_job(defs, "train_noise", instance).success
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(["noise", "champion_model"])}
    )
    again = job.execute_in_process(instance=instance, raise_on_error=False)
    assert again.success
    client = mlflow_client()
    assert [str(v.version) for v in client.search_model_versions("name='noise'")] == ["1"]
    gate = check_results(again)["promotion_gate"]
    assert gate.passed and "already registered as v1; not registered again" in str(gate.description)


def test_finishing_an_interrupted_promotion_retires_the_challenger(
    home: Path, tmp_path: Path
) -> None:
    """A run killed after registering v1 but before the alias moved: re-running champion_model
    finishes the promotion, and a challenger shadowing the old champion loses its alias."""
    _learnable_spec(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(str(tmp_path))
    assert run_job(defs, "train_noise", instance).success
    client = mlflow_client()
    tracker = Tracker(client.tracking_uri)
    # As the kill left it: no alias, the candidate run without its gate outcome.
    client.delete_registered_model_alias("noise", "champion")
    client.delete_tag(client.get_model_version("noise", "1").run_id, "promoted")
    from ml_assets.lib.models import ConstantModel

    model = ConstantModel("prior", "prior", "candidate", "classification", ["a"], value=0.5)
    logged = tracker.log_model("other", model, pl.DataFrame({"a": [1.0]}), {}, {})
    other = tracker.register("noise", logged, "card", {"promoted": "False"})
    tracker.set_alias("noise", "challenger", other, "challenger", "test", "in the shadow")
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(["noise", "champion_model"])}
    )
    assert job.execute_in_process(instance=instance).success
    assert {a: str(v) for a, v in client.get_registered_model("noise").aliases.items()} == {
        "champion": "1"
    }
    last = moves(client, "noise")[-1]
    assert (last.alias, last.action, last.from_version) == ("challenger", "retired", other)


def test_a_version_left_pending_by_a_killed_run_is_resolved(home: Path) -> None:
    """A run killed between registering and tagging leaves promoted=pending: the next
    promotion resolves it from the alias (held: promoted; not held: not, with the reason)."""
    from ml_assets.lib.models import ConstantModel

    tracker = Tracker(mlflow_client().tracking_uri)
    model = ConstantModel("prior", "prior", "candidate", "classification", ["x"], value=0.5)
    frame = pl.DataFrame({"x": [1.0, 2.0]})
    versions = []
    for _ in range(2):
        logged = tracker.log_model("left", model, frame, {}, {})
        versions.append(tracker.register("left", logged, "card", {"promoted": "pending"}))
    tracker.set_champion("left", versions[0])
    assert tracker.resolve_pending("left") == versions
    tags = {v: mlflow_client().get_model_version("left", v).tags for v in versions}
    assert tags[versions[0]]["promoted"] == "True"
    assert tags[versions[1]]["promoted"] == "False"
    assert "ended before its promotion finished" in tags[versions[1]]["gate_reasons"]
    assert tracker.resolve_pending("left") == []


def test_mlflow_runs_a_killed_job_left_running_are_ended(home: Path, tmp_path: Path) -> None:
    """A job killed mid-training leaves its MLflow run RUNNING; once its Dagster run has ended
    (failed, terminated or deleted), the next training run of the spec marks it KILLED."""
    _learnable_spec(tmp_path)
    client = mlflow_client()
    tracker = Tracker(client.tracking_uri)
    experiment = tracker.experiment_id("noise")
    instance = dg.DagsterInstance.ephemeral()
    dead = instance.add_run(dg.DagsterRun(job_name="train_noise", run_id="killed-run"))
    instance.handle_run_event(  # what run monitoring or a termination records
        dead.run_id,
        dg.DagsterEvent(
            event_type_value="PIPELINE_FAILURE", job_name="train_noise", message="killed"
        ),
    )
    orphan = client.create_run(experiment, tags={"dagster_run_id": dead.run_id}).info.run_id
    day_old = int((time.time() - 2 * 86400) * 1000)
    deleted = client.create_run(
        experiment, start_time=day_old, tags={"dagster_run_id": "gone"}
    ).info.run_id
    elsewhere = client.create_run(experiment, tags={"dagster_run_id": "live-elsewhere"})
    assert run_job(build_definitions(str(tmp_path)), "train_noise", instance).success
    for run_id in (orphan, deleted):
        run = client.get_run(run_id)
        assert run.info.status == "KILLED" and "had ended" in run.data.tags["ended_by"]
    # A run no instance here knows, started recently, may be live on another instance.
    running = client.search_runs([experiment], filter_string="attributes.status = 'RUNNING'")
    assert [r.info.run_id for r in running] == [elsewhere.info.run_id]
