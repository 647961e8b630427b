"""Shared fixtures: an isolated project home (data dir, MLflow SQLite store) per test; and,
under pytest-xdist, each worker on a core of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests against the service stack run only under `make test-services` (after `make services`),
# one at a time: they share its registry and buckets.
SERVICES_FLAG = "ML_ASSETS_TEST_SERVICES"
collect_ignore = [] if os.environ.get(SERVICES_FLAG) == "1" else ["services"]


def pytest_configure(config: pytest.Config) -> None:
    """With as many xdist workers as cores, pin each worker (and the processes it starts) to
    one core: LightGBM takes every core a process may use (lib/cores.py), and two workers'
    OpenMP threads on the same two cores wait on each other far more than they compute."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= count:
        os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})


FAIR_SPEC = """
name: {name}
task: classification
source:
  path: {csv}
target: had_affair
derive:
  had_affair: "CAST(affairs > 0 AS INT)"
drop: [affairs]
categorical: [occupation, occupation_husb]
metrics:
  primary: roc_auc
  secondary: [log_loss]
success_criteria:
  thresholds: {{roc_auc: {{min: 0.6}}}}
candidates:
  glm: {{}}
  lightgbm: {{budget: 2, num_boost_round: 200}}
validation:
  min_rows: 500
  max_duplicate_fraction: 0.5
evaluation:
  bootstrap_samples: 200
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project home: data, MLflow SQLite store and Dagster instance all inside it."""
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.setenv("ML_ASSETS_HOME", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    (root / "dagster_home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
    monkeypatch.delenv("ML_ASSETS_DATA_DIR", raising=False)
    monkeypatch.delenv("ML_ASSETS_SPECS", raising=False)
    return root


def write_fair_csv(path: Path, rows: int | None = None) -> Path:
    """The statsmodels 'fair' data as the user's own CSV file."""
    import polars as pl
    import statsmodels.api as sm

    frame = pl.from_pandas(sm.datasets.fair.load_pandas().data)
    (frame.head(rows) if rows else frame).write_csv(path)
    return path


@pytest.fixture
def user_specs(tmp_path: Path) -> Path:
    """A directory for ML_ASSETS_SPECS holding one spec ('user_affairs') over a CSV it owns."""
    directory = tmp_path / "specs"
    directory.mkdir()
    write_fair_csv(directory / "survey.csv", rows=2500)
    (directory / "user_affairs.yaml").write_text(
        FAIR_SPEC.format(name="user_affairs", csv="survey.csv")
    )
    return directory
