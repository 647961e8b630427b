"""Two specs training at once, and two runs of one spec at once, on the services: each spec
ends with exactly one champion, and nothing fails on a lock. The two affairs runs bypass the
run queue (`dagster job execute`), so only the promotion pool keeps their promotions apart."""

from __future__ import annotations

import subprocess

import dagster as dg

from ml_assets.lib.names import GATE_REASONS_TAG, PROMOTED_TAG, promotion_pool
from ml_assets.lib.tracking import CHAMPION_ALIAS
from ml_assets_tests.helpers import VENV_BIN
from ml_assets_tests.services.conftest import COMMAND_TIMEOUT_S, ROOT, Stack, forget_models

JOBS = ["train_affairs", "train_affairs", "train_co2"]
LOCK_ERRORS = [
    "Traceback",
    "deadlock",
    "UniqueViolation",
    "IntegrityError",
    "LockError",
    "RESOURCE_ALREADY_EXISTS",
    "database is locked",
]


def _promotion_window(instance: dg.DagsterInstance, run_id: str, step: str) -> tuple[float, float]:
    times = {
        e.dagster_event.event_type: e.timestamp
        for e in instance.all_logs(run_id)
        if e.dagster_event is not None
        and e.step_key == step
        and e.dagster_event.event_type
        in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS)
    }
    return times[dg.DagsterEventType.STEP_START], times[dg.DagsterEventType.STEP_SUCCESS]


def test_concurrent_runs_leave_one_champion_per_spec(stack: Stack) -> None:
    client = stack.mlflow()
    forget_models(client, "affairs", "co2")
    procs = [
        subprocess.Popen(
            [str(VENV_BIN / "dagster"), "job", "execute", "-m", "ml_assets.definitions", "-j", job],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=stack.env,
            cwd=ROOT,
        )
        for job in JOBS
    ]
    outputs = [p.communicate(timeout=COMMAND_TIMEOUT_S)[0] for p in procs]
    for job, proc, out in zip(JOBS, procs, outputs, strict=True):
        assert proc.returncode == 0, f"{job}:\n{out[-4000:]}"
        found = [word for word in LOCK_ERRORS if word in out]
        assert not found, f"{job}: {found}\n{out[-4000:]}"

    for spec in ("affairs", "co2"):
        champion = client.get_model_version_by_alias(spec, CHAMPION_ALIAS).version
        versions = client.search_model_versions(f"name='{spec}'")
        promoted = [v.version for v in versions if v.tags.get(PROMOTED_TAG) == "True"]
        assert promoted == [champion], [(v.version, v.tags) for v in versions]
        assert all(v.tags.get(PROMOTED_TAG) in ("True", "False") for v in versions)
    # The second affairs run was not promoted, and says why.
    refused = [
        v for v in client.search_model_versions("name='affairs'") if v.tags[PROMOTED_TAG] == "False"
    ]
    for version in refused:
        assert version.tags.get(GATE_REASONS_TAG), version.tags

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="train_affairs"))
        assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        first, second = sorted(
            _promotion_window(instance, r.run_id, "affairs__champion_model") for r in runs
        )
        assert first[1] <= second[0], f"promotions overlapped: {first} and {second}"
        info = instance.event_log_storage.get_concurrency_info(promotion_pool("affairs"))
        assert info.limit == 1 and not info.claimed_slots
