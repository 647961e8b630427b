"""`make demo`, then `make ui`: the real ``dagster-daemon`` takes over the instance the demo's
simulation left, repeats none of its runs, and scores the next day's file by itself."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

import dagster as dg

from ml_assets import cli
from ml_assets.definitions import build_definitions
from ml_assets.defs.simulation import simulate
from ml_assets.lib.churn import ChurnStream
from ml_assets_tests.helpers import (
    run_job,
    sensor_ticks,
    start_daemon,
    stop_process_group,
    tick_after,
    wait_for,
)

STREAM = ["--customers", "400", "--drift-day", "-1"]


def test_the_daemon_takes_over_and_scores_the_next_days_file(home: Path) -> None:
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=16)
    # As `make demo` does, on fewer days: 14 to train on, then 2 more arrive, ending yesterday.
    assert cli.main(["stream", "--days", "14", "--restart", "--start", str(start), *STREAM]) == 0
    incoming = home / "data" / "churn" / "incoming"
    defs = build_definitions()
    with dg.DagsterInstance.get() as instance:
        assert run_job(defs, "train_churn", instance).success
        stream = ChurnStream(start=start, customers_per_day=400, drift_day=None)
        sim = simulate(defs, instance, stream, incoming, range(14, 16), weekly_retrain=False)
        assert [d.day for d in sim.days][-1] == str(today - dt.timedelta(days=1))
        runs_before = {r.run_id for r in instance.get_runs()}

        log = home / "daemon.log"
        daemon = start_daemon(os.environ.copy(), log)
        try:
            # The daemon's first look at the demo's instance: nothing to score, nothing to train.
            arrival = wait_for(
                "the arrival sensor's first tick",
                daemon,
                log,
                lambda: (
                    [
                        t
                        for t in sensor_ticks(instance, "score_churn_on_arrival")
                        if t.status.value != "STARTED"
                    ]
                    or None
                ),
            )
            assert arrival[-1].status.value == "SKIPPED", arrival[-1]
            assert f"every day up to {today - dt.timedelta(days=1)} is scored" in str(
                arrival[-1].skip_reason
            )
            # The next day's file arrives: the daemon scores it, with no hand on the keyboard.
            assert cli.main(["stream", "--next", *STREAM]) == 0
            assert (incoming / f"{today}.parquet").exists()

            def scored() -> dg.RunRecord | None:
                records = instance.get_run_records(
                    dg.RunsFilter(job_name="score_churn", tags={"dagster/partition": str(today)})
                )
                done = [r for r in records if r.dagster_run.is_finished]
                return done[0] if done else None

            record = wait_for(f"score_churn for {today}", daemon, log, scored)
            assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS, record.dagster_run
            assert record.dagster_run.tags["dagster/sensor_name"] == "score_churn_on_arrival"
            assert instance.get_latest_materialization_event(
                dg.AssetKey(["churn", "drift_report"])
            ).asset_materialization.partition == str(today)

            # The drift sensor reads that report on its next tick (no drift in this stream).
            finished = record.end_time or time.time()
            tick = wait_for(
                "a drift sensor tick after the scoring run",
                daemon,
                log,
                lambda: tick_after(instance, "retrain_churn_on_drift", finished),
            )
            assert tick.status.value == "SKIPPED", tick
            assert f"{today}: within thresholds" in str(tick.skip_reason)
        finally:
            stop_process_group(daemon, signal.SIGTERM, 30)
        # Exactly one run was launched by the daemon: today's scoring.
        new = [r for r in instance.get_runs() if r.run_id not in runs_before]
        assert [(r.job_name, r.tags.get("dagster/partition")) for r in new] == [
            ("score_churn", str(today))
        ]
