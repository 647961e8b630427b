"""ML_ASSETS_EXECUTOR: which executor a deployment's jobs run their steps on."""

from __future__ import annotations

import dagster as dg
import pytest

from ml_assets.defs import executors


def test_unset_runs_steps_in_the_jobs_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(executors.EXECUTOR_ENV, raising=False)
    assert executors.deploy_executor() is None
    assert executors.job_config() == executors.IN_PROCESS


def test_celery_reads_its_broker_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # dagster-celery comes with the [services] extra; make test-services runs it for real.
    pytest.importorskip("dagster_celery")
    monkeypatch.setenv(executors.EXECUTOR_ENV, "celery")
    found = executors.deploy_executor()
    assert isinstance(found, dg.ExecutorDefinition) and found.name == "celery"
    assert executors.job_config() is None  # the executor's own config, not in_process


def test_a_module_attribute_names_any_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(executors.EXECUTOR_ENV, "dagster:multiprocess_executor")
    assert executors.deploy_executor() is dg.multiprocess_executor


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("dagster_nowhere:executor", "cannot import executor from dagster_nowhere"),
        ("dagster:no_such_executor", "cannot import no_such_executor from dagster"),
        ("dagster:AssetKey", "is a type, not an executor"),
    ],
)
def test_a_wrong_name_says_what_to_write(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv(executors.EXECUTOR_ENV, value)
    with pytest.raises(ValueError, match=message):
        executors.deploy_executor()
