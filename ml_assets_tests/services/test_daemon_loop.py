"""The churn loop on the PostgreSQL instance, as deploy/README.md runs it: the real
``dagster-daemon`` scores each arriving day from the bucket, a drifted day makes the drift
sensor request exactly one retraining, and that run goes through the run queue. The webserver
serves the same instance."""

from __future__ import annotations

import datetime as dt
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import requests

from ml_assets_tests.helpers import VENV_BIN, sensor_ticks, stop_process_group, wait_for
from ml_assets_tests.services.conftest import ROOT, Stack, forget_models

TRAIN_DAYS = 14
LOOKBACK = 7  # the arrival sensor scores the newest 7 days (monitoring.SCORING_LOOKBACK_DAYS)
DEADLINE_S = 420


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(stack: Stack, log: Path, *argv: str) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [str(VENV_BIN / argv[0]), *argv[1:]],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=stack.env,
            cwd=ROOT,
            start_new_session=True,
        )


@pytest.fixture
def daemon(stack: Stack, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = tmp_path / "daemon.log"
    proc = _start(stack, log, "dagster-daemon", "run", "-m", "ml_assets.definitions")
    try:
        yield proc, log
    finally:
        stop_process_group(proc, signal.SIGTERM, 30)


def _runs(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(job_name=job)))


def test_a_drifted_day_retrains_churn_once_through_the_queue(
    stack: Stack, daemon: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    proc, log = daemon
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

    port = _free_port()
    web_log = tmp_path / "webserver.log"
    web = _start(
        stack,
        web_log,
        "dagster-webserver",
        "-m",
        "ml_assets.definitions",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    )
    try:
        with dg.DagsterInstance.get() as instance:
            # The daemon scores the backlog of the newest days from the bucket ...
            def backlog() -> bool | None:
                done = [r for r in _runs(instance, "score_churn") if r.is_finished]
                return True if len(done) >= LOOKBACK else None

            wait_for("the backlog's scoring runs", proc, log, backlog, DEADLINE_S)
            # ... while the webserver answers on the same instance.
            info = wait_for(
                "the webserver",
                web,
                web_log,
                lambda: _get(f"http://127.0.0.1:{port}/server_info"),
                DEADLINE_S,
            )
            assert "dagster_webserver_version" in info, info
            # The drifted day arrives.
            done = stack.run(*cli, "--next", *drift)
            assert done.returncode == 0 and "(drifted)" in done.stdout, done.stdout + done.stderr
            drifted = str(today - dt.timedelta(days=2))

            def retrained() -> dg.DagsterRun | None:
                runs = [
                    r for r in _runs(instance, "train_churn") if r.tags.get("dagster/sensor_name")
                ]
                return runs[0] if runs and runs[0].is_finished else None

            run = wait_for("the drift retraining", proc, log, retrained, DEADLINE_S)
            assert run.status == dg.DagsterRunStatus.SUCCESS, run
            assert run.tags["dagster/sensor_name"] == "retrain_churn_on_drift"
            assert run.tags["ml_assets/partition"] == drifted
            queued = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED
            ).records
            assert queued, "the retraining run did not go through the run queue"
            # The drift sensor looks again after the retraining and requests nothing more.
            finished = instance.get_run_record_by_id(run.run_id).end_time
            tick = wait_for(
                "a drift sensor tick after the retraining",
                proc,
                log,
                lambda: next(
                    (
                        t
                        for t in sensor_ticks(instance, "retrain_churn_on_drift")
                        if t.timestamp > finished and t.status.value != "STARTED"
                    ),
                    None,
                ),
                DEADLINE_S,
            )
            assert tick.status.value == "SKIPPED", tick
            trainings = [
                r for r in _runs(instance, "train_churn") if r.tags.get("dagster/sensor_name")
            ]
            assert len(trainings) == 1, [(r.run_id, r.tags) for r in trainings]
            scored = {r.tags.get("dagster/partition") for r in _runs(instance, "score_churn")}
            assert drifted in scored
    finally:
        stop_process_group(web, signal.SIGTERM, 30)


def _get(url: str) -> dict | None:
    try:
        response = requests.get(url, timeout=2)
    except requests.RequestException:
        return None
    return response.json() if response.ok else None
