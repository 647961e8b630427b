"""tasks.py: one task object per spec task, with split checks that match their names."""

from __future__ import annotations

import datetime as dt
import typing

import numpy as np
import polars as pl
import pytest

from ml_assets.lib.data import build_features
from ml_assets.lib.spec import Task as TaskName
from ml_assets.lib.tasks import TASKS, Forecasting, Tabular, task_for
from ml_assets.lib.timeseries import regularize
from ml_assets_tests.lib.conftest import classification_raw, forecast_spec, spec_from


def _weekly_series(n: int = 120) -> pl.DataFrame:
    """A weekly series with a season of 8, two weeks missing (filled by the spec's imputation)."""
    start = dt.datetime(2021, 1, 2)
    steps = [i for i in range(n) if i not in (30, 31)]
    y = [10 + 0.1 * i + np.sin(2 * np.pi * i / 8) for i in steps]
    return pl.DataFrame({"date": [start + dt.timedelta(weeks=i) for i in steps], "y": y})


def test_every_task_a_spec_can_name_has_a_task_object() -> None:
    assert set(TASKS) == set(typing.get_args(TaskName))
    assert isinstance(task_for(spec_from()), Tabular)
    assert isinstance(task_for(forecast_spec()), Forecasting)


@pytest.mark.parametrize("kind", ["tabular", "forecasting"])
def test_split_checks_come_back_under_the_names_the_asset_declares(kind: str) -> None:
    if kind == "tabular":
        spec = spec_from()
        features = build_features(spec, classification_raw(300))
    else:
        spec = forecast_spec()
        features, _ = task_for(spec).shape_features(spec, build_features(spec, _weekly_series()))
    task = task_for(spec)
    results = task.split_checks(spec, task.assign_splits(spec, features))
    assert [r.name for r in results] == list(task.split_check_names)
    assert all(r.passed for r in results), [r.detail for r in results if not r.passed]


def test_forecasting_features_are_put_on_the_regular_grid() -> None:
    spec = forecast_spec()
    raw = build_features(spec, _weekly_series())
    shaped, metadata = task_for(spec).shape_features(spec, raw)
    assert shaped.height == regularize(spec, raw.drop("__row_id")).height == raw.height + 2
    assert metadata == {"imputed_steps": 2}
    assert task_for(spec_from()).shape_features(spec_from(), raw) == (raw, {})
