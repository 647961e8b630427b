"""Helpers for tests that run real jobs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pytest
from mlflow import MlflowClient

VENV_BIN = Path(sys.executable).parent


def run_job(
    defs: dg.Definitions, job: str, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        e.materialization.asset_key.to_user_string()
        for e in result.get_asset_materialization_events()
    }


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def mlflow_client() -> MlflowClient:
    uri = os.environ["MLFLOW_TRACKING_URI"]
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def dagster_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the dagster CLI of this venv, as a user would, and capture its output."""
    return subprocess.run(
        [str(VENV_BIN / "dagster"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


TABULAR_STAGES = [
    "raw_data",
    "features",
    "splits",
    "baselines",
    "candidate_glm",
    "candidate_lightgbm",
    "evaluation_report",
    "champion_model",
]


def step_error_text(result: dg.ExecuteInProcessResult) -> str:
    """Every failed step's error message and the messages of its causes, joined."""
    texts = []
    for event in result.all_events:
        error = event.event_specific_data.error if event.is_step_failure else None
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return " ".join(texts)


def start_process(
    argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """A command of this venv (``argv[0]`` names it; else one on PATH, e.g. make) in a session
    of its own, so that stop_process_group ends it and its children; its output in ``log``."""
    program = VENV_BIN / argv[0]
    with log.open("w") as out:
        return subprocess.Popen(
            [str(program) if program.exists() else argv[0], *argv[1:]],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )


def start_daemon(
    env: dict[str, str], log: Path, module: str = "ml_assets.definitions"
) -> subprocess.Popen[bytes]:
    """A real ``dagster-daemon run`` on the code location ``module``, its output in ``log``."""
    return start_process(["dagster-daemon", "run", "-m", module], env, log)


def stop_process_group(process: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Signal ``process``'s whole group, then kill it if it has not ended by ``timeout``."""
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


T = TypeVar("T")
DAEMON_DEADLINE_S = 300


def wait_for(
    what: str,
    daemon: subprocess.Popen[bytes],
    log: Path,
    found: Callable[[], T | None],
    deadline_s: float = DAEMON_DEADLINE_S,
) -> T:
    """Poll ``found()`` until it returns something, while the daemon is alive."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if (value := found()) is not None:
            return value
        if daemon.poll() is not None:
            pytest.fail(f"dagster-daemon exited ({daemon.returncode}):\n{log.read_text()[-3000:]}")
        time.sleep(2)
    pytest.fail(f"after {deadline_s} s, still waiting for {what}:\n{log.read_text()[-3000:]}")


def sensor_ticks(instance: dg.DagsterInstance, name: str) -> list[Any]:
    """The newest ticks (up to 20) of the sensor or schedule ``name``."""
    for state in instance.all_instigator_state():
        if state.instigator_name == name:
            return list(instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=20))
    return []


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tick_after(instance: dg.DagsterInstance, name: str, after: float) -> Any | None:  # noqa: ANN401
    """The first finished tick of sensor ``name`` after ``after`` (epoch s), if any: a tick is
    recorded STARTED when its evaluation begins."""
    return next(
        (
            t
            for t in sensor_ticks(instance, name)
            if t.timestamp > after and t.status.value != "STARTED"
        ),
        None,
    )
