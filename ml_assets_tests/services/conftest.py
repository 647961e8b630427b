"""The service stack `make services` starts (deploy/services.py), as each test finds it: a
Dagster instance on a PostgreSQL database of its own, MLflow's tracking server, asset data under
a prefix of its own in the S3 bucket, Redis. A service that does not answer fails the test."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import psycopg2
import pytest
import redis
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ml_assets_tests.helpers import VENV_BIN

ROOT = Path(__file__).resolve().parents[2]


def _load_services_script():  # noqa: ANN202
    """deploy/services.py, the script behind `make services` (not a package module)."""
    spec = importlib.util.spec_from_file_location(
        "deploy_services", ROOT / "deploy" / "services.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SERVICES = _load_services_script()
DATA_BUCKET, MLFLOW_BUCKET = SERVICES.DATA_BUCKET, SERVICES.MLFLOW_BUCKET

NEEDED = [
    "ML_ASSETS_DAGSTER_PG_URL",
    "MLFLOW_TRACKING_URI",
    "ML_ASSETS_DATA_DIR",
    "AWS_ENDPOINT_URL",
    "ML_ASSETS_CELERY_BROKER",
]
COMMAND_TIMEOUT_S = 600


@dataclass(frozen=True)
class Stack:
    """One test's view of the services; ``env`` is what its commands run with."""

    env: dict[str, str]
    dagster_home: Path
    data_prefix: str  # key prefix of this test's asset data in DATA_BUCKET

    def s3(self):  # noqa: ANN201
        return boto3.client("s3", endpoint_url=self.env["AWS_ENDPOINT_URL"])

    def keys(self, bucket: str, prefix: str) -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def mlflow(self) -> MlflowClient:
        uri = self.env["MLFLOW_TRACKING_URI"]
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def run(self, *argv: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """A command of this venv (dagster, python -m ...) as a user types it."""
        command = [str(VENV_BIN / argv[0]), *argv[1:]]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            env={**self.env, **(extra or {})},
            cwd=ROOT,
        )


def _admin_url(dagster_url: str) -> str:
    return dagster_url.replace("postgresql+psycopg2://", "postgresql://").rsplit("/", 1)[0]


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    """The stack's environment (.services/env.sh), each service checked to answer."""
    missing = [k for k in NEEDED if not os.environ.get(k)]
    if missing:
        pytest.fail(f"{missing} not set: run `make services`, then `make test-services`")
    env = dict(os.environ)
    psycopg2.connect(f"{_admin_url(env['ML_ASSETS_DAGSTER_PG_URL'])}/postgres").close()
    assert requests.get(f"{env['MLFLOW_TRACKING_URI']}/health", timeout=5).ok
    buckets = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).list_buckets()
    assert {DATA_BUCKET, MLFLOW_BUCKET} <= {b["Name"] for b in buckets["Buckets"]}
    assert redis.Redis.from_url(env["ML_ASSETS_CELERY_BROKER"]).ping()
    return env


def forget_models(client: MlflowClient, *names: str) -> None:
    """Registered models a test is about to create, removed from the shared registry first
    (their runs and artifacts stay)."""
    for name in names:
        try:
            client.delete_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise


@pytest.fixture
def stack(
    services: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    """A fresh Dagster database and DAGSTER_HOME (deploy/team/dagster.yaml) and a fresh data
    prefix; the database is dropped afterwards."""
    name = f"dagster_test_{uuid.uuid4().hex[:10]}"
    admin = f"{_admin_url(services['ML_ASSETS_DAGSTER_PG_URL'])}/postgres"
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "deploy" / "team" / "dagster.yaml", home / "dagster.yaml")
    prefix = f"tests/{name}"
    env = {
        **services,
        "DAGSTER_HOME": str(home),
        "ML_ASSETS_DAGSTER_PG_URL": services["ML_ASSETS_DAGSTER_PG_URL"].rsplit("/", 1)[0]
        + f"/{name}",
        "ML_ASSETS_DATA_DIR": f"s3://{DATA_BUCKET}/{prefix}",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("ML_ASSETS_EXECUTOR", None)
    env.pop("ML_ASSETS_SPECS", None)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    SERVICES.create_dagster_storage(env)  # as `make services` does for its own instance
    try:
        yield Stack(env, home, prefix)
    finally:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()
