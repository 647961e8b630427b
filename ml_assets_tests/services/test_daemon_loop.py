"""The churn loop on the PostgreSQL instance, as deploy/README.md runs it: the real
``dagster-daemon`` scores each arriving day from the bucket, a drifted day makes the drift
sensor request exactly one retraining, and that run goes through the run queue. The webserver
serves the same instance."""

from __future__ import annotations

import datetime as dt
import signal
from pathlib import Path

import dagster as dg
import requests

from ml_assets.defs.monitoring import SCORING_LOOKBACK_DAYS
from ml_assets_tests.helpers import (
    free_port,
    start_process,
    stop_process_group,
    tick_after,
    wait_for,
)
from ml_assets_tests.services.conftest import ROOT, Stack, forget_models

TRAIN_DAYS = 14
LOOKBACK = SCORING_LOOKBACK_DAYS  # the arrival sensor first scores the newest days
DEADLINE_S = 420


def _runs(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(job_name=job)))


def test_a_drifted_day_retrains_churn_once_through_the_queue(stack: Stack, tmp_path: Path) -> None:
    forget_models(stack.mlflow(), "churn")
    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=TRAIN_DAYS + 2)  # the drifted day is the day before yesterday
    drift = ["--drift-day", str(TRAIN_DAYS)]
    cli = ("python", "-m", "ml_assets.cli", "stream")
    done = stack.run(*cli, "--days", str(TRAIN_DAYS), "--restart", "--start", str(start), *drift)
    assert done.returncode == 0, done.stderr
    assert "s3://ml-assets/" in done.stdout, done.stdout
    done = stack.run(
        "dagster", "job", "execute", "-m", "ml_assets.definitions", "-j", "train_churn"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # Then the daemon and the webserver, as deploy/README.md starts them.
    log, web_log = tmp_path / "daemon.log", tmp_path / "webserver.log"
    port = free_port()
    web_argv = ["dagster-webserver", "-m", "ml_assets.definitions", "-h", "127.0.0.1"]
    daemon_argv = ["dagster-daemon", "run", "-m", "ml_assets.definitions"]
    daemon = start_process(daemon_argv, stack.env, log, ROOT)
    web = start_process([*web_argv, "-p", str(port)], stack.env, web_log, ROOT)
    try:
        with dg.DagsterInstance.get() as instance:
            # The daemon scores the newest days from the bucket ...
            def backlog() -> list[dg.DagsterRun] | None:
                done = [r for r in _runs(instance, "score_churn") if r.is_finished]
                return done if len(done) >= LOOKBACK else None

            scored = wait_for("the backlog's scoring runs", daemon, log, backlog, DEADLINE_S)
            assert {r.status for r in scored} == {dg.DagsterRunStatus.SUCCESS}, scored
            expected = {
                str(start + dt.timedelta(days=d)) for d in range(TRAIN_DAYS - LOOKBACK, TRAIN_DAYS)
            }
            assert {r.tags["dagster/partition"] for r in scored} == expected
            # ... while the webserver serves the same instance: it lists those runs.
            server = f"http://127.0.0.1:{port}"
            info = wait_for(
                "the webserver", web, web_log, lambda: _get(f"{server}/server_info"), DEADLINE_S
            )
            assert "dagster_webserver_version" in info, info
            query = (
                '{ runsOrError(filter: {pipelineName: "score_churn"}) '
                "{ ... on Runs { results { runId } } } }"
            )
            listed = requests.post(f"{server}/graphql", json={"query": query}, timeout=30).json()
            ids = {r["runId"] for r in listed["data"]["runsOrError"]["results"]}
            assert {r.run_id for r in scored} <= ids, listed
            # The drifted day arrives.
            done = stack.run(*cli, "--next", *drift)
            assert done.returncode == 0 and "(drifted)" in done.stdout, done.stdout + done.stderr
            drifted = str(today - dt.timedelta(days=2))

            def retrained() -> dg.DagsterRun | None:
                runs = [
                    r for r in _runs(instance, "train_churn") if r.tags.get("dagster/sensor_name")
                ]
                return runs[0] if runs and runs[0].is_finished else None

            run = wait_for("the drift retraining", daemon, log, retrained, DEADLINE_S)
            assert run.status == dg.DagsterRunStatus.SUCCESS, run
            assert run.tags["dagster/sensor_name"] == "retrain_churn_on_drift"
            assert run.tags["ml_assets/partition"] == drifted
            queued = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED
            ).records
            assert queued, "the retraining run did not go through the run queue"
            day_runs = [
                r
                for r in _runs(instance, "score_churn")
                if r.tags.get("dagster/partition") == drifted
            ]
            assert [r.status for r in day_runs] == [dg.DagsterRunStatus.SUCCESS]
            # The drift sensor looks again after the retraining and requests nothing more.
            finished = instance.get_run_record_by_id(run.run_id).end_time
            tick = wait_for(
                "a drift sensor tick after the retraining",
                daemon,
                log,
                lambda: tick_after(instance, "retrain_churn_on_drift", finished),
                DEADLINE_S,
            )
            assert tick.status.value == "SKIPPED", tick
            trainings = [
                r for r in _runs(instance, "train_churn") if r.tags.get("dagster/sensor_name")
            ]
            assert len(trainings) == 1, [(r.run_id, r.tags) for r in trainings]
    finally:
        stop_process_group(web, signal.SIGTERM, 30)
        stop_process_group(daemon, signal.SIGTERM, 30)


def _get(url: str) -> dict | None:
    try:
        response = requests.get(url, timeout=2)
    except requests.RequestException:
        return None
    return response.json() if response.ok else None
