"""Shared fixtures for the lib tests: tiny hand-made frames, spec builders, trained models.

Everything here is small (a few hundred rows) and seeded, so the lib suite runs in seconds and
gives the same numbers on every run. Trained models and evaluations are session-scoped because
training and bootstrapping are the slow parts; tests must not mutate them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import polars as pl
import pytest
import yaml

from ml_assets.lib.data import SPLIT, build_features
from ml_assets.lib.evaluation import Evaluation, Lineage, evaluate
from ml_assets.lib.lightgbm_search import train_lightgbm
from ml_assets.lib.metrics import get_metric
from ml_assets.lib.models import (
    GLMModel,
    LightGBMModel,
    Model,
    TrainingData,
    prepare,
    train_baselines,
    train_glm,
)
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.splits import assign_splits
from ml_assets.lib.tracking import Tracker

# A small, fast LightGBM search: the defaults (20 trials, 1000 rounds) are for real data.
FAST_LIGHTGBM = {"budget": 3, "num_boost_round": 200, "early_stopping_rounds": 20}


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base`` (a value of None removes the key)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


BASE_CLASSIFICATION: dict[str, Any] = {
    "name": "toy",
    "task": "classification",
    "source": {"path": "data.csv"},
    "target": "y",
    "metrics": {"primary": "roc_auc", "secondary": ["log_loss", "f1"]},
    "candidates": {"glm": {}, "lightgbm": FAST_LIGHTGBM},
    "validation": {"min_rows": 50},
    "evaluation": {"bootstrap_samples": 100},
}

BASE_REGRESSION: dict[str, Any] = {
    "name": "toy_counts",
    "task": "regression",
    "source": {"path": "data.csv"},
    "target": "y",
    "metrics": {"primary": "rmse", "secondary": ["mae", "poisson_deviance"]},
    "candidates": {"glm": {}, "lightgbm": FAST_LIGHTGBM},
    "validation": {"min_rows": 50},
    "evaluation": {"bootstrap_samples": 100},
}


def spec_from(overrides: dict[str, Any] | None = None, task: str = "classification") -> MLSpec:
    """An MLSpec built in memory (no file): a small base spec with ``overrides`` merged in."""
    base = BASE_CLASSIFICATION if task == "classification" else BASE_REGRESSION
    return MLSpec.model_validate(_merge(base, overrides or {}))


def classification_raw(n: int = 400, seed: int = 0) -> pl.DataFrame:
    """Binary target with signal in x1 (strong), x2 (negative) and color == 'blue'."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    logit = -0.2 + 1.5 * x1 - 1.0 * x2 + 1.0 * (color == "blue")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pl.DataFrame({"x1": x1, "x2": x2, "color": color, "y": y})


def regression_raw(n: int = 400, seed: int = 1) -> pl.DataFrame:
    """Count target (Poisson) whose mean depends on x1, x2 and color."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    mu = np.exp(0.8 + 0.7 * x1 - 0.4 * x2 + 0.5 * (color == "blue"))
    return pl.DataFrame({"x1": x1, "x2": x2, "color": color, "y": rng.poisson(mu)})


def split_frames(spec: MLSpec, raw: pl.DataFrame) -> tuple[pl.DataFrame, ...]:
    """(train, validation, test) frames as the pipeline builds them."""
    splits = assign_splits(spec, build_features(spec, raw))
    return tuple(splits.filter(pl.col(SPLIT) == s) for s in ("train", "validation", "test"))


@dataclass
class ColumnModel(Model):
    """A model of our own interface that returns a column of the frame as its prediction.

    Lets evaluation and gate tests control exactly how good a 'candidate' is.
    """

    column: str = "score"

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        return frame[self.column].cast(pl.Float64).to_numpy()


@dataclass(frozen=True)
class Fitted:
    spec: MLSpec
    train: pl.DataFrame
    validation: pl.DataFrame
    test: pl.DataFrame
    data: TrainingData
    baselines: list[Model]
    glm: GLMModel
    lightgbm: LightGBMModel


def _train_all(spec: MLSpec, raw: pl.DataFrame) -> Fitted:
    train, validation, test = split_frames(spec, raw)
    data = prepare(spec, train, validation)
    assert spec.candidates.glm is not None and spec.candidates.lightgbm is not None
    return Fitted(
        spec,
        train,
        validation,
        test,
        data,
        train_baselines(data),
        train_glm(data, spec.candidates.glm),
        train_lightgbm(data, spec.candidates.lightgbm, get_metric(spec.primary_metric)),
    )


@pytest.fixture(scope="session")
def trained_classification() -> Fitted:
    """Chosen on the validation split alone (cv_folds 0); trained_regression cross-validates,
    as small data does by default."""
    spec = spec_from(
        {"success_criteria": {"thresholds": {"roc_auc": {"min": 0.6}}}, "split": {"cv_folds": 0}}
    )
    return _train_all(spec, classification_raw())


@pytest.fixture(scope="session")
def trained_regression() -> Fitted:
    return _train_all(spec_from(task="regression"), regression_raw())


@pytest.fixture(scope="session")
def classification_evaluation(trained_classification: Fitted) -> Evaluation:
    t = trained_classification
    return evaluate(t.spec, t.test, t.glm, t.baselines, "prior")


@pytest.fixture(scope="session")
def regression_evaluation(trained_regression: Fitted) -> Evaluation:
    t = trained_regression
    return evaluate(t.spec, t.test, t.lightgbm, t.baselines, "mean")


def lineage_for(spec: MLSpec, ev: Evaluation) -> Lineage:
    return Lineage(
        spec_name=spec.name,
        spec_digest=spec.digest(),
        code_version="0.1.0+test",
        data_fingerprint="feedc0ffee000001",
        test_fingerprint=ev.test_fingerprint,
        candidate_run_id="run-123",
        split_strategy=spec.split_strategy,
        split_rows={"train": 240, "validation": 80, "test": ev.test_rows},
    )


@pytest.fixture
def classification_frame() -> pl.DataFrame:
    return classification_raw()


def forecast_spec(
    *,
    candidates: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    **forecast: Any,
) -> MLSpec:
    """A small weekly forecasting spec over co2; keyword arguments override 'forecast' settings."""
    raw: dict[str, Any] = {
        "name": "toy_fc",
        "task": "forecasting",
        "source": {"statsmodels": "co2"},
        "time_column": "date",
        "target": "y",
        "forecast": {
            "frequency": "1w",
            "horizon": 8,
            "seasonal_period": 8,
            "folds": 2,
            "imputation": "linear",
            **forecast,
        },
        "candidates": candidates if candidates is not None else {"sarimax": {}},
    }
    if metrics is not None:
        raw["metrics"] = metrics
    return MLSpec.model_validate(raw)


@pytest.fixture
def make_spec() -> Callable[..., MLSpec]:
    return spec_from


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write a spec (a dict, dumped as YAML, or raw YAML text) into ``tmp_path``.

    A dict without ``source`` gets a small CSV next to it, so ``load_spec`` finds its source.
    Returns the spec file's path.
    """

    def write(
        content: dict[str, Any] | str, filename: str = "spec.yaml", directory: Path | None = None
    ) -> Path:
        where = directory or tmp_path
        where.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            content = dict(content)
            if "source" not in content:
                classification_raw(60).write_csv(where / "data.csv")
                content["source"] = {"path": "data.csv"}
            content = yaml.safe_dump(content, sort_keys=False)
        path = where / filename
        path.write_text(content)
        return path

    return write


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tracker]:
    """A Tracker on a fresh SQLite store, shared by one test module."""
    root: Path = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    # Tracker sets MLflow's process-wide URIs (and their env vars): put them back afterwards.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_REGISTRY_URI", uri)
        yield Tracker(uri, (root / "artifacts").as_uri())
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
