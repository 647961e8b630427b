"""A `dagster job execute` killed with SIGKILL mid-training or mid-promotion, then cleared the
way the README says and run again: no MLflow run stays RUNNING, nothing stays pending, the
registry and Dagster agree on the champion, and the rerun promotes exactly as a clean run
would. Two jobs promoting the same spec at the same moment take turns.

Faults inside the promotion are placed exactly by a code location (`faults.py`, written by the
test) that loads ml_assets' definitions and wraps one Tracker method: the real job runs until
that call, then the whole process group is killed, or waits for its twin."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.definitions import build_definitions
from ml_assets_tests.helpers import (
    VENV_BIN,
    mlflow_client,
    run_job,
    start_daemon,
    stop_process_group,
)

SPEC = "user_affairs"
ROOT = Path(__file__).resolve().parent.parent


def _step_started(instance: dg.DagsterInstance, run_id: str, step: str) -> bool:
    return any(
        record.dagster_event is not None
        and record.dagster_event.event_type == dg.DagsterEventType.STEP_START
        and record.step_key == step
        for record in instance.all_logs(run_id)
    )


@pytest.mark.parametrize("killed_in", ["candidate_glm", "evaluation_report"])
def test_a_killed_run_is_cleared_and_the_rerun_promotes_as_a_clean_run(
    home: Path, user_specs: Path, killed_in: str
) -> None:
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "ML_ASSETS_SPECS": str(user_specs)}
    instance = dg.DagsterInstance.get()  # its storage created once, as the Makefile does
    instance.get_runs(limit=1)
    job = subprocess.Popen(
        [str(VENV_BIN / "dagster"), "job", "execute", "-m", "ml_assets.definitions"]
        + ["-j", f"train_{SPEC}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    with instance:
        try:
            deadline = time.monotonic() + 240
            while True:
                runs = instance.get_runs(limit=1)
                if runs and _step_started(instance, runs[0].run_id, f"{SPEC}__{killed_in}"):
                    break
                assert job.poll() is None, "the job ended before the step to kill it in"
                assert time.monotonic() < deadline, f"{killed_in} never started"
                time.sleep(0.2)
        finally:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
        killed = instance.get_run_by_id(runs[0].run_id)
        assert killed is not None and killed.status == dg.DagsterRunStatus.STARTED
        # What Terminate (force) on the Runs page records for a run whose process is gone.
        instance.report_run_canceled(killed)

        assert run_job(build_definitions(str(user_specs)), f"train_{SPEC}", instance).success
        client = mlflow_client()
        experiment = client.get_experiment_by_name(SPEC).experiment_id
        assert client.search_runs([experiment], "attributes.status = 'RUNNING'") == []
        versions = client.search_model_versions(f"name='{SPEC}'")
        assert [v.tags["promoted"] for v in versions] == ["True"]  # the rerun's, nothing pending
        champion = client.get_model_version_by_alias(SPEC, "champion")
        assert str(champion.version) == str(versions[0].version)
        # A write the kill cut short left at most a temporary file, which the rerun replaced.
        assert not list((home / "data" / SPEC).rglob("*.tmp"))


# A code location that is ml_assets' own, with one Tracker method wrapped (see the docstring).
FAULTS = """
import os, signal, time
from pathlib import Path

from ml_assets.lib.tracking import Tracker
from ml_assets.definitions import defs

FAULT = os.environ["FAULT"]
if FAULT in ("register", "set_champion"):
    wrapped = getattr(Tracker, FAULT)

    def killed_after(self, *args):
        result = wrapped(self, *args)
        os.killpg(os.getpgrp(), signal.SIGKILL)  # kill -9 of the whole job, right after it
        return result

    setattr(Tracker, FAULT, killed_after)
elif FAULT == "race":
    lock, set_champion = Tracker.promotion_lock, Tracker.set_champion

    def meet(room, seconds):
        meeting = Path(os.environ["FAULT_MEETING"]) / room
        meeting.mkdir(exist_ok=True)
        (meeting / str(os.getpid())).touch()
        deadline = time.monotonic() + seconds
        while len(list(meeting.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)

    def meet_then_lock(self, name):
        meet("before_lock", 120)  # both evaluated against no champion, both about to promote
        return lock(self, name)

    def meet_then_set(self, *args):
        meet("moving_alias", 5)  # without the lock both would read "no champion" and get here
        return set_champion(self, *args)

    Tracker.promotion_lock, Tracker.set_champion = meet_then_lock, meet_then_set
elif FAULT == "hold_once":
    log_model = Tracker.log_model

    def held_the_first_time(self, *args, **kwargs):
        marker = Path(os.environ["FAULT_MARKER"])
        try:
            with marker.open("x") as out:  # only the first process to get here holds
                out.write(str(os.getpid()))
        except FileExistsError:
            return log_model(self, *args, **kwargs)
        time.sleep(300)  # mid-training, until the test kills this process
        return log_model(self, *args, **kwargs)

    Tracker.log_model = held_the_first_time
"""


def _faulty_job(tmp_path: Path, user_specs: Path, **fault: str) -> subprocess.Popen[bytes]:
    """`dagster job execute` of train_user_affairs from the faults code location."""
    (tmp_path / "faults.py").write_text(FAULTS)
    env = {
        **os.environ,
        "ML_ASSETS_SPECS": str(user_specs),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        **fault,
    }
    return subprocess.Popen(
        [str(VENV_BIN / "dagster"), "job", "execute", "-m", "faults", "-j", f"train_{SPEC}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _created_instance(dagster_home: Path) -> dg.DagsterInstance:
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return _created_instance_as_is()


def _created_instance_as_is() -> dg.DagsterInstance:
    instance = dg.DagsterInstance.get()  # its storage created once, as the Makefile does
    instance.get_runs(limit=1)
    return instance


def _champion_in_dagster(instance: dg.DagsterInstance) -> str:
    """The champion version the latest champion_model materialization records."""
    event = instance.get_latest_materialization_event(dg.AssetKey([SPEC, "champion_model"]))
    assert event is not None and event.asset_materialization is not None
    return str(event.asset_materialization.metadata["champion_version"].value)


@pytest.mark.parametrize("killed_after", ["register", "set_champion"])
def test_a_run_killed_mid_promotion_leaves_registry_and_dagster_agreeing(
    home: Path, user_specs: Path, tmp_path: Path, killed_after: str
) -> None:
    instance = _created_instance(Path(os.environ["DAGSTER_HOME"]))
    job = _faulty_job(tmp_path, user_specs, FAULT=killed_after)
    output = job.communicate(timeout=300)[0].decode(errors="replace")
    assert job.returncode == -signal.SIGKILL, output[-3000:]
    client = mlflow_client()
    (left,) = client.search_model_versions(f"name='{SPEC}'")
    assert left.tags["promoted"] == "pending"
    alias_moved = killed_after == "set_champion"
    aliases = {a: str(v) for a, v in client.get_registered_model(SPEC).aliases.items()}
    assert (aliases == {"champion": "1"}) == alias_moved
    with instance:
        (killed,) = instance.get_runs()
        assert killed.status == dg.DagsterRunStatus.STARTED
        instance.report_run_canceled(killed)  # Terminate (force) on the Runs page

        assert run_job(build_definitions(str(user_specs)), f"train_{SPEC}", instance).success
        champion = client.get_model_version_by_alias(SPEC, "champion")
        assert _champion_in_dagster(instance) == str(champion.version)
    found = client.search_model_versions(f"name='{SPEC}'")
    versions = {str(v.version): v.tags["promoted"] for v in found}
    if alias_moved:
        # The killed run's promotion stands; the rerun repeats it (same data, spec and code)
        # and is refused as a repeat, as a second clean run is.
        assert versions == {"1": "True"}
        assert str(champion.version) == "1"
    else:
        # v1 never became champion: resolved as not promoted; the rerun promotes its own.
        assert versions == {"1": "False", "2": "True"}
        assert str(champion.version) == "2"
    experiment = client.get_experiment_by_name(SPEC).experiment_id
    assert client.search_runs([experiment], "attributes.status = 'RUNNING'") == []


def test_two_jobs_promoting_one_spec_at_once_take_turns(
    home: Path, user_specs: Path, tmp_path: Path
) -> None:
    """Two deployments (each its own data dir) promoting into one registry: both compared
    against no champion and reach the promotion together; the one that gets the lock first
    promotes, the other sees the champion moved and is not promoted."""
    _created_instance(Path(os.environ["DAGSTER_HOME"])).dispose()
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    jobs = [
        _faulty_job(
            tmp_path,
            user_specs,
            FAULT="race",
            FAULT_MEETING=str(meeting),
            ML_ASSETS_DATA_DIR=str(home / f"data_{i}"),
        )
        for i in range(2)
    ]
    outputs = [job.communicate(timeout=420)[0].decode(errors="replace") for job in jobs]
    for job, output in zip(jobs, outputs, strict=True):
        assert job.returncode == 0, output[-3000:]
        assert "UNIQUE constraint" not in output and "database is locked" not in output
    assert len(list((meeting / "before_lock").iterdir())) == 2
    assert len(list((meeting / "moving_alias").iterdir())) == 1  # the loser never tried
    client = mlflow_client()
    versions = client.search_model_versions(f"name='{SPEC}'")
    assert sorted(v.tags["promoted"] for v in versions) == ["False", "True"]
    champion = client.get_model_version_by_alias(SPEC, "champion")
    (winner,) = [v for v in versions if v.tags["promoted"] == "True"]
    (loser,) = [v for v in versions if v.tags["promoted"] == "False"]
    assert str(champion.version) == str(winner.version)
    loser_run = client.get_run(loser.run_id).data.tags
    assert loser_run["gate_reasons"].startswith(
        f"champion moved from no champion to v{winner.version} during this run"
    )


def _until(what: str, daemon: subprocess.Popen[bytes], log: Path, found):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + 240
    while (value := found()) is None:
        assert daemon.poll() is None, f"dagster-daemon exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"still waiting for {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    return value


def test_under_the_daemon_a_killed_run_is_failed_and_the_queued_run_of_its_spec_goes_on(
    home: Path, user_specs: Path, tmp_path: Path
) -> None:
    """The Makefile's instance under a real dagster-daemon: two runs of one spec are queued one
    after the other; the first run's process is killed mid-training (held in its first MLflow
    model log by the faults code location, so the kill cannot come after the run ended); the
    code server that launched it marks it FAILED and the second run starts, trains and
    promotes."""
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    shutil.copyfile(ROOT / "deploy" / "local" / "dagster.yaml", dagster_home / "dagster.yaml")
    (tmp_path / "faults.py").write_text(FAULTS)
    marker = tmp_path / "held_run_pid"
    env = {
        **os.environ,
        "ML_ASSETS_SPECS": str(user_specs),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "FAULT": "hold_once",  # the first run to log a model waits there to be killed
        "FAULT_MARKER": str(marker),
    }
    instance = _created_instance_as_is()
    location = ["-m", "faults"]
    log = home / "daemon.log"
    daemon = start_daemon(env, log, "faults")
    try:
        for _ in range(2):
            launched = subprocess.run(
                [str(VENV_BIN / "dagster"), "job", "launch", *location, "-j", f"train_{SPEC}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert launched.returncode == 0, launched.stderr[-3000:]
        with instance:
            second, first = instance.get_runs()  # newest first

            def mid_training() -> int | None:
                text = marker.read_text() if marker.exists() else ""
                return int(text) if text else None

            pid = _until("the first run to train", daemon, log, mid_training)
            assert _step_started(instance, first.run_id, f"{SPEC}__baselines")
            queued = instance.get_run_by_id(second.run_id)
            assert queued is not None and queued.status == dg.DagsterRunStatus.QUEUED
            os.kill(pid, signal.SIGKILL)

            def failed() -> dg.DagsterRun | None:
                run = instance.get_run_by_id(first.run_id)
                return run if run is not None and run.is_finished else None

            assert _until("the killed run to end", daemon, log, failed).status == (
                dg.DagsterRunStatus.FAILURE
            )

            def second_done() -> dg.DagsterRun | None:
                run = instance.get_run_by_id(second.run_id)
                return run if run is not None and run.is_finished else None

            assert _until("the queued run", daemon, log, second_done).status == (
                dg.DagsterRunStatus.SUCCESS
            ), log.read_text()[-3000:]
            assert _champion_in_dagster(instance) == "1"
    finally:
        stop_process_group(daemon, signal.SIGINT, 60)
    client = mlflow_client()
    experiment = client.get_experiment_by_name(SPEC).experiment_id
    assert client.search_runs([experiment], "attributes.status = 'RUNNING'") == []
    versions = client.search_model_versions(f"name='{SPEC}'")
    assert [(str(v.version), v.tags["promoted"]) for v in versions] == [("1", "True")]
