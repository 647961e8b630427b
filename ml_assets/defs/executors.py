"""Where a job's steps run: in the job's own process by default, or on the executor a
deployment names in ML_ASSETS_EXECUTOR (deploy/README.md)."""

from __future__ import annotations

import importlib
import os
from typing import Any

import dagster as dg

EXECUTOR_ENV = "ML_ASSETS_EXECUTOR"
# `celery`: dagster-celery's executor on the broker and result backend these name.
CELERY_BROKER_ENV = "ML_ASSETS_CELERY_BROKER"
CELERY_BACKEND_ENV = "ML_ASSETS_CELERY_BACKEND"
# With the default executor, a job's steps run one after another in its process: a spec's
# steps mostly wait on each other, and a process per step costs ~3 s of imports each.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def deploy_executor() -> dg.ExecutorDefinition | None:
    """The executor named by ML_ASSETS_EXECUTOR: unset for Dagster's default, ``celery``, or
    ``<module>:<attribute>`` of any ExecutorDefinition (e.g. ``dagster_k8s:k8s_job_executor``)."""
    name = os.environ.get(EXECUTOR_ENV, "").strip()
    if not name:
        return None
    if name == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(
            {"broker": {"env": CELERY_BROKER_ENV}, "backend": {"env": CELERY_BACKEND_ENV}},
            name="celery",
        )
    module, _, attribute = name.partition(":")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"{EXECUTOR_ENV}={name!r}: cannot import {attribute or '(no attribute)'} from "
            f"{module} ({exc}); use 'celery' or '<module>:<executor>', e.g. "
            "'dagster_k8s:k8s_job_executor'"
        ) from exc
    if not isinstance(found, dg.ExecutorDefinition):
        raise ValueError(f"{EXECUTOR_ENV}={name!r} is a {type(found).__name__}, not an executor")
    return found


def job_config() -> dict[str, Any] | None:
    """Jobs' default run config: in-process steps, unless a deployment chose the executor."""
    return IN_PROCESS if deploy_executor() is None else None
