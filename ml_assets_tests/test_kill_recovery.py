"""A `dagster job execute` killed with SIGKILL mid-training, then cleared the way the README
says and run again: no MLflow run stays RUNNING, nothing stays pending, and the rerun
promotes exactly as a clean run would."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.definitions import build_definitions
from ml_assets_tests.helpers import VENV_BIN, mlflow_client, run_job

SPEC = "user_affairs"


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
