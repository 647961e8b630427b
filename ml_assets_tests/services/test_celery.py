"""train_affairs with its steps executed by two Celery workers (dagster-celery over Redis), as
deploy/README.md starts them: the run succeeds and each step's events name its worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import redis

from ml_assets.defs.executors import EXECUTOR_ENV
from ml_assets.lib.tracking import CHAMPION_ALIAS
from ml_assets_tests.helpers import start_process, stop_process_group
from ml_assets_tests.services.conftest import ROOT, Stack, forget_models

WORKERS = ("w1", "w2")
READY_TIMEOUT_S = 90


def _start_worker(stack: Stack, name: str, log: Path) -> subprocess.Popen[bytes]:
    argv = ["dagster-celery", "worker", "start", "-A", "dagster_celery.app"]
    argv += ["-y", "deploy/team/celery.yaml", "-n", name, "--", "--concurrency=1"]
    return start_process(argv, {**stack.env, EXECUTOR_ENV: "celery"}, log, ROOT)


@pytest.fixture
def workers(stack: Stack, tmp_path: Path) -> Iterator[list[str]]:
    """Two workers, each taking one step at a time; their names as Celery reports them. Tasks
    an aborted earlier run left on the broker are dropped first."""
    redis.Redis.from_url(stack.env["ML_ASSETS_CELERY_BROKER"]).flushdb()
    started = {
        n: (_start_worker(stack, n, tmp_path / f"{n}.log"), tmp_path / f"{n}.log") for n in WORKERS
    }
    names = [f"{n}@{socket.gethostname()}" for n in WORKERS]
    try:
        end = time.monotonic() + READY_TIMEOUT_S
        for (proc, log), name in zip(started.values(), names, strict=True):
            while f"{name} ready" not in log.read_text():
                if proc.poll() is not None or time.monotonic() > end:
                    pytest.fail(f"Celery worker {name} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield names
    finally:
        for proc, _ in started.values():
            stop_process_group(proc, signal.SIGTERM, 30)


def test_train_affairs_runs_its_steps_on_two_celery_workers(
    stack: Stack, workers: list[str]
) -> None:
    forget_models(stack.mlflow(), "affairs")
    done = stack.run(
        "dagster",
        "job",
        "execute",
        "-m",
        "ml_assets.definitions",
        "-j",
        "train_affairs",
        extra={EXECUTOR_ENV: "celery"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs(dg.RunsFilter(job_name="train_affairs"))
        assert run.status == dg.DagsterRunStatus.SUCCESS
        ran_by: dict[str, str] = {}
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            metadata = entry.dagster_event.engine_event_data.metadata
            if "Celery worker" in metadata:
                ran_by[entry.step_key] = metadata["Celery worker"].value
        succeeded = {
            e.step_key
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        }
    assert succeeded and set(ran_by) == succeeded, (ran_by, succeeded)
    share = Counter(ran_by.values())
    assert set(share) == set(workers), share  # both workers took steps
    assert stack.mlflow().get_model_version_by_alias("affairs", CHAMPION_ALIAS).version == "1"
    assert os.environ.get(EXECUTOR_ENV) is None  # the test's own process kept the default
