"""Two specs training at once, and two runs of one spec at once, on the services: each spec
ends with exactly one champion, and nothing fails on a lock. The two affairs runs bypass the
run queue (`dagster job execute`), so only the promotion pool keeps their promotions apart;
the test holds that pool's slot until a run's promotion step is seen waiting for it."""

from __future__ import annotations

import subprocess
import time

import dagster as dg
import pytest

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
STEP = "affairs__champion_model"
HOLDER = "held-by-the-test"  # the run id the test claims the pool's slot under


def _step_events(instance: dg.DagsterInstance, job: str) -> dict[str, list]:  # noqa: ANN401
    return {
        run.run_id: [e for e in instance.all_logs(run.run_id) if e.step_key == STEP]
        for run in instance.get_runs(dg.RunsFilter(job_name=job))
    }


def _window(events: list) -> tuple[float, float]:  # noqa: ANN401
    kinds = {e.dagster_event.event_type: e.timestamp for e in events if e.dagster_event}
    return kinds[dg.DagsterEventType.STEP_START], kinds[dg.DagsterEventType.STEP_SUCCESS]


def _blocked(events: list) -> bool:  # noqa: ANN401
    return any("blocked by limit for pool" in (e.message or "") for e in events)


def test_concurrent_runs_leave_one_champion_per_spec(stack: Stack) -> None:
    client = stack.mlflow()
    forget_models(client, "affairs", "co2")
    pool = promotion_pool("affairs")
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(pool)  # as a step does before claiming
        assert storage.claim_concurrency_slot(pool, HOLDER, "test").is_claimed
        procs = [
            subprocess.Popen(
                [str(VENV_BIN / "dagster"), "job", "execute", "-m", "ml_assets.definitions"]
                + ["-j", job],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=stack.env,
                cwd=ROOT,
            )
            for job in JOBS
        ]
        try:
            end = time.monotonic() + COMMAND_TIMEOUT_S
            while not any(_blocked(ev) for ev in _step_events(instance, "train_affairs").values()):
                if time.monotonic() > end or all(p.poll() is not None for p in procs):
                    pytest.fail("no affairs promotion step waited for the pool's slot")
                time.sleep(1)
            storage.free_concurrency_slots_for_run(HOLDER)
            outputs = [p.communicate(timeout=COMMAND_TIMEOUT_S)[0] for p in procs]
        finally:
            storage.free_concurrency_slots_for_run(HOLDER)
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        for job, proc, out in zip(JOBS, procs, outputs, strict=True):
            assert proc.returncode == 0, f"{job}:\n{out[-4000:]}"
            found = [word for word in LOCK_ERRORS if word in out]
            assert not found, f"{job}: {found}\n{out[-4000:]}"
        events = _step_events(instance, "train_affairs")
        assert len(events) == 2
        first, second = sorted(_window(ev) for ev in events.values())
        assert first[1] <= second[0], f"promotions overlapped: {first} and {second}"
        assert not storage.get_concurrency_info(pool).claimed_slots  # every slot given back

    for spec in ("affairs", "co2"):
        champion = client.get_model_version_by_alias(spec, CHAMPION_ALIAS).version
        versions = client.search_model_versions(f"name='{spec}'")
        promoted = [v.version for v in versions if v.tags.get(PROMOTED_TAG) == "True"]
        assert promoted == [champion], [(v.version, v.tags) for v in versions]
        assert all(v.tags.get(PROMOTED_TAG) in ("True", "False") for v in versions)
        # A version that was not promoted says why, in the registry.
        assert all(v.tags.get(GATE_REASONS_TAG) for v in versions), [v.tags for v in versions]
