"""The drift retraining sensor on an ephemeral instance (skip, fire once, no duplicates,
cooldown), and the schedules of a monitored spec."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from ml_assets.definitions import build_definitions
from ml_assets.defs.resources import ArtifactStore
from ml_assets.lib.models import ConstantModel
from ml_assets.lib.tracking import Tracker
from ml_assets_tests.helpers import mlflow_client

SPEC = """
name: watched
task: classification
source: {path: history.csv}
target: y
monitoring: {start_date: 2026-01-01, cooldown_hours: 24}
"""
KEY = dg.AssetKey(["watched", "drift_report"])


def _report(instance: dg.DagsterInstance, day: str, retrain: bool) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=KEY,
            partition=day,
            metadata={
                "retrain_recommended": retrain,
                "drifted_features": "usage_hours, support_contacts" if retrain else "none",
                "max_psi": 0.91 if retrain else 0.05,
                "drifted_share": 0.43 if retrain else 0.0,
                "reasons": "max PSI 0.910 on 'usage_hours' > 0.5"
                if retrain
                else "within thresholds",
                "model_version": "3",
            },
        )
    )


def _sensor(tmp_path: Path) -> tuple[dg.Definitions, dg.SensorDefinition]:
    (tmp_path / "history.csv").write_text("x,y\n1,0\n2,1\n")
    (tmp_path / "watched.yaml").write_text(SPEC)
    defs = build_definitions(str(tmp_path))
    return defs, defs.resolve_sensor_def("retrain_watched_on_drift")


def _tick(
    defs: dg.Definitions,
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    cursor: str | None,
):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
    )
    return sensor.evaluate_tick(context)


def test_no_drift_then_drift_then_repeat(home: Path, tmp_path: Path) -> None:
    defs, sensor = _sensor(tmp_path)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:
        assert _tick(defs, sensor, instance, None).run_requests == []  # no report yet

        _report(instance, "2026-01-10", retrain=False)
        calm = _tick(defs, sensor, instance, None)
        assert calm.run_requests == [] and "within thresholds" in (calm.skip_message or "")

        _report(instance, "2026-01-11", retrain=True)
        fired = _tick(defs, sensor, instance, None)
        assert len(fired.run_requests) == 1
        request = fired.run_requests[0]
        assert request.run_key == "watched:drift:2026-01-11"
        assert request.job_name in (None, "train_watched")
        assert request.tags["ml_assets/trigger"] == "drift"
        assert request.tags["ml_assets/max_psi"] == "0.9100"
        # The retraining window ends at the drifted day, whatever arrives before it runs.
        assert request.tags["ml_assets/window_end"] == "2026-01-11"
        assert "usage_hours" in request.tags["ml_assets/drifted_features"]

        again = _tick(defs, sensor, instance, fired.cursor)
        assert again.run_requests == [] and "already requested" in (again.skip_message or "")

        _report(instance, "2026-01-12", retrain=True)  # minutes later: inside the cooldown
        cooled = _tick(defs, sensor, instance, fired.cursor)
        assert cooled.run_requests == [] and "cooldown" in (cooled.skip_message or "")


def test_a_rescored_past_day_does_not_trigger_retraining(home: Path, tmp_path: Path) -> None:
    defs, sensor = _sensor(tmp_path)
    with dg.instance_for_test() as instance:
        _report(instance, "2026-01-12", retrain=False)
        _report(instance, "2026-01-05", retrain=True)  # a backfill of an old, drifted day
        stale = _tick(defs, sensor, instance, None)
        assert stale.run_requests == [] and "re-run of a past day" in (stale.skip_message or "")


def test_a_daemon_started_without_the_cursor_repeats_no_retraining(
    home: Path, tmp_path: Path
) -> None:
    """The instance's runs, not only the sensor's cursor, record what was requested: a daemon
    that starts after the demo's simulation (which kept the cursor to itself) asks again for
    nothing, and still keeps the cooldown."""
    defs, sensor = _sensor(tmp_path)
    with dg.instance_for_test() as instance:
        _report(instance, "2026-01-11", retrain=True)
        fired = _tick(defs, sensor, instance, None)
        assert len(fired.run_requests) == 1
        # The requested run, as the daemon (or the simulation) launches it with the tags.
        request = fired.run_requests[0]
        instance.add_run(
            dg.DagsterRun(job_name="train_watched", run_id="retrain-1", tags=dict(request.tags))
        )
        fresh = _tick(defs, sensor, instance, None)  # no cursor: a daemon starting now
        assert fresh.run_requests == [] and "already requested" in (fresh.skip_message or "")
        _report(instance, "2026-01-12", retrain=True)
        cooled = _tick(defs, sensor, instance, None)
        assert cooled.run_requests == [] and "cooldown" in (cooled.skip_message or "")


def test_drift_scored_by_a_former_champion_is_ignored(home: Path, tmp_path: Path) -> None:
    """A report scored by v3 says nothing about the model that holds the alias now."""
    defs, sensor = _sensor(tmp_path)
    tracker = Tracker(mlflow_client().tracking_uri)
    model = ConstantModel("prior", "prior", "candidate", "classification", ["x"], value=0.5)
    logged = tracker.log_model("watched", model, pl.DataFrame({"x": [1.0, 2.0]}), {}, {})
    tracker.set_champion("watched", tracker.register("watched", logged, "card", {}))
    with dg.instance_for_test() as instance:
        _report(instance, "2026-01-11", retrain=True)  # scored by v3
        tick = _tick(defs, sensor, instance, None)
        assert tick.run_requests == []
        assert "scored by v3, and the champion is now v1" in (tick.skip_message or "")


def test_weekly_retraining_schedule_is_running(tmp_path: Path) -> None:
    (tmp_path / "history.csv").write_text("x,y\n1,0\n2,1\n")
    (tmp_path / "watched.yaml").write_text(SPEC)
    schedule = build_definitions(str(tmp_path)).resolve_schedule_def("weekly_retrain_watched")
    assert schedule.job_name == "train_watched"
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_each_arrived_file_is_scored_once_and_again_when_replaced(tmp_path: Path) -> None:
    """The arrival sensor requests every day among the newest whose file came and was not
    scored since it was written, oldest first (a late day too); a future-dated file waits."""
    import os

    (tmp_path / "history.csv").write_text("x,y\n1,0\n2,1\n")
    (tmp_path / "watched.yaml").write_text(SPEC)
    defs = build_definitions(str(tmp_path))
    sensor = defs.resolve_sensor_def("score_watched_on_arrival")
    assert sensor.job_name == "score_watched" and sensor.minimum_interval_seconds == 30
    store = ArtifactStore(base_dir=str(tmp_path / "data"))
    with dg.instance_for_test() as instance:

        def tick() -> dg.SensorExecutionData:
            context = dg.build_sensor_context(
                instance=instance, definitions=defs, resources={"artifacts": store}
            )
            return sensor.evaluate_tick(context)

        empty = tick()
        assert not empty.run_requests and "no daily file in" in (empty.skip_message or "")
        incoming = tmp_path / "data" / "watched" / "incoming"
        incoming.mkdir(parents=True)
        for n, day in enumerate(("2026-01-01", "2026-01-02", "2026-01-09", "2026-01-10")):
            (incoming / f"{day}.parquet").write_bytes(b"")
            os.utime(incoming / f"{day}.parquet", (1_000_000 + n, 1_000_000 + n))
        future = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)
        (incoming / f"{future}.parquet").write_bytes(b"")
        instance.report_runless_asset_event(  # 2026-01-09 was scored after its file came
            dg.AssetMaterialization(
                asset_key=dg.AssetKey(["watched", "predictions"]), partition="2026-01-09"
            )
        )
        requests = tick().run_requests or []
        # The newest 7 days up to the newest file are 2026-01-04 .. 2026-01-10.
        assert [r.partition_key for r in requests] == ["2026-01-10"]
        assert requests[0].run_key == "watched:score:2026-01-10:1000003"
        for day in ("2026-01-05", "2026-01-10"):  # a late file, and the newest day scored
            (incoming / f"{day}.parquet").write_bytes(b"")
            os.utime(incoming / f"{day}.parquet", (1_000_010, 1_000_010))
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=dg.AssetKey(["watched", "predictions"]), partition=day
                )
            )
        (incoming / "2026-01-05.parquet").touch()  # rewritten once its labels were known
        requests = tick().run_requests or []
        assert [r.partition_key for r in requests] == ["2026-01-05"]
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=dg.AssetKey(["watched", "predictions"]), partition="2026-01-05"
            )
        )
        waiting = tick()
        assert not waiting.run_requests
        assert "every day up to 2026-01-10 is scored; waiting for" in str(waiting.skip_message)
        assert "2026-01-11.parquet" in str(waiting.skip_message)
        assert f"{future} arrived ahead of its day" in str(waiting.skip_message)
