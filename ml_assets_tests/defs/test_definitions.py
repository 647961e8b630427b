"""Definitions load: every spec builds its graph, checks and job; test-split isolation."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from ml_assets.definitions import build_definitions
from ml_assets.defs.shared import ALL_SPLITS, TRAIN_AND_VALIDATION
from ml_assets_tests.helpers import TABULAR_STAGES

STAGES = TABULAR_STAGES
FORECAST_STAGES = [
    *["raw_data", "features", "splits", "baselines", "candidate_ets", "candidate_sarimax"],
    *["candidate_prophet", "candidate_lightgbm", "evaluation_report", "champion_model"],
    "forecast",
]


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions()


MONITORED_STAGES = [
    *STAGES,
    "predictions",
    "drift_report",
    "shadow_predictions",
    "shadow_comparison",
]


@pytest.mark.parametrize(
    ("spec", "stages"),
    [
        ("affairs", STAGES),
        ("doctor_visits", STAGES),
        ("party", STAGES),
        ("co2", FORECAST_STAGES),
        ("churn", MONITORED_STAGES),
    ],
)
def test_every_builtin_spec_has_its_graph_and_job(
    defs: dg.Definitions, spec: str, stages: list[str]
) -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {f"{spec}/{stage}" for stage in stages} == {k for k in keys if k.startswith(f"{spec}/")}
    assert {graph.get(dg.AssetKey([spec, s])).group_name for s in stages} == {spec}
    job = defs.resolve_job_def(f"train_{spec}")
    assert job is not None
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert (f"{spec}/raw_data", "raw_data_contract") in checks
    assert (f"{spec}/features", "features_contract") in checks
    assert (f"{spec}/splits", "splits_disjoint") in checks
    assert (f"{spec}/champion_model", "promotion_gate") in checks


def test_train_all_covers_every_spec(defs: dg.Definitions) -> None:
    job = defs.resolve_job_def("train_all")
    nodes = {n.name for n in job.graph.node_defs}
    for spec in ("affairs", "doctor_visits", "party", "co2", "churn"):
        assert f"{spec}__champion_model" in nodes
    # Daily scoring is partitioned and runs in its own job, never inside training.
    for stage in ("predictions", "drift_report", "shadow_predictions", "shadow_comparison"):
        assert f"churn__{stage}" not in nodes


def test_monitored_spec_has_its_production_loop(defs: dg.Definitions) -> None:
    score = defs.resolve_job_def("score_churn")
    assert {n.name for n in score.graph.node_defs} == {
        "churn__predictions",
        "churn__drift_report",
        "churn__shadow_predictions",
        "churn__shadow_comparison",
    }
    assert score.partitions_def is not None
    for name, job in (
        ("score_churn_on_arrival", "score_churn"),
        ("retrain_churn_on_drift", "train_churn"),
    ):
        sensor = defs.resolve_sensor_def(name)
        assert sensor.job_name == job
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    schedule = defs.resolve_schedule_def("weekly_retrain_churn")
    assert schedule.job_name == "train_churn"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_gx_checks_on_data_are_blocking(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.asset_check_keys:
        if key.name in ("raw_data_contract", "features_contract", "splits_disjoint"):
            assert graph.get_check_spec(key).blocking, key


def test_only_the_evaluation_report_reads_the_test_split(defs: dg.Definitions) -> None:
    """Model assets load train+validation rows; the test rows reach evaluation_report only."""
    readers = {}
    for assets_def in defs.resolve_asset_graph().assets_defs:
        for name, in_def in assets_def.node_def.input_dict.items():
            key = assets_def.keys_by_input_name[name]
            if key.path[-1] == "splits":
                readers[assets_def.key.to_user_string()] = in_def.metadata
    assert readers["affairs/baselines"] == TRAIN_AND_VALIDATION
    assert readers["affairs/candidate_lightgbm"] == TRAIN_AND_VALIDATION
    assert readers["affairs/candidate_glm"] == TRAIN_AND_VALIDATION
    assert readers["affairs/evaluation_report"] == ALL_SPLITS
    test_readers = [k for k, meta in readers.items() if "test" in meta.get("splits", ["test"])]
    # The report also reads train/validation rows, to refuse models trained on other splits
    # (and for forecasting's MASE scale); `forecast` refits the promoted champion on every row
    # after evaluation, by design. No training asset reads test rows.
    assert sorted(test_readers) == [
        "affairs/evaluation_report",
        "churn/evaluation_report",
        "co2/evaluation_report",
        "co2/forecast",
        "doctor_visits/evaluation_report",
        "party/evaluation_report",
    ]
    assert readers["co2/candidate_sarimax"] == TRAIN_AND_VALIDATION


def test_user_spec_dir_adds_a_graph_and_a_job(user_specs: Path) -> None:
    defs = build_definitions(str(user_specs))
    assert defs.resolve_job_def("train_user_affairs") is not None
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "user_affairs/champion_model" in keys and "affairs/champion_model" in keys


def test_bad_user_spec_is_left_out_with_file_and_field(tmp_path: Path) -> None:
    """The other specs load; the broken one's asset and job carry its error."""
    from ml_assets.defs.broken import BrokenSpecWarning

    (tmp_path / "broken.yaml").write_text(
        "name: broken\ntask: regression\nsource: {statsmodels: randhie}\ntarget: mdvis\n"
        "candidatez: {}\n"
    )
    with pytest.warns(BrokenSpecWarning, match="broken.yaml"):
        defs = build_definitions(str(tmp_path))
    assert defs.resolve_job_def("train_affairs") is not None
    job = defs.resolve_job_def("train_broken")
    assert "broken.yaml" in str(job.description) and "candidatez" in str(job.description)
    assert "candidates" in str(job.description)


def test_the_simulation_tags_its_runs_as_the_daemon_does() -> None:
    """The daemon skips a sensor's run key only when a run carries these two tags."""
    from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

    from ml_assets.lib import names

    assert (names.DAGSTER_RUN_KEY_TAG, names.DAGSTER_SENSOR_TAG) == (RUN_KEY_TAG, SENSOR_NAME_TAG)


def test_broken_spec_names_never_collide_with_others(tmp_path: Path) -> None:
    """A broken 'all.yaml' (train_all exists), a non-ASCII file name and two files whose names
    clean up alike still give the location unique, valid job names and asset keys."""
    from ml_assets.defs.broken import BrokenSpecWarning

    for name in ("all.yaml", "modèle.yaml", "a-b.yaml", "a_b.yaml", "affairs.yaml"):
        (tmp_path / name).write_text("name: [not, a, name]\n")
    with pytest.warns(BrokenSpecWarning):
        defs = build_definitions(str(tmp_path))
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"train_all", "train_all_1", "train_mod_le", "train_a_b", "train_a_b_1"} <= jobs
    assert "train_affairs_1" in jobs and defs.resolve_job_def("train_affairs") is not None


def test_loading_the_definitions_freezes_what_they_imported() -> None:
    """The import-time objects leave the cyclic collector (bench-scale: seconds per run)."""
    import gc

    import ml_assets.definitions  # noqa: F401

    assert gc.get_freeze_count() > 100_000
