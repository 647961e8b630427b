"""Cross-validated selection: candidates and their settings are chosen on folds of train +
validation made as the split is made, every fold scored by a fit that never saw it."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import polars as pl
import pytest

from ml_assets.lib import cross_validation as cv_lib
from ml_assets.lib.data import SPLIT
from ml_assets.lib.families import train_tabular
from ml_assets.lib.lightgbm_search import train_lightgbm
from ml_assets.lib.metrics import get_metric
from ml_assets.lib.models import TrainingData, prepare, train_glm
from ml_assets.lib.spec import GLMCandidate, LightGBMCandidate, MLSpec
from ml_assets.lib.tasks import task_for
from ml_assets.lib.thresholds import choose_threshold
from ml_assets_tests.lib.conftest import (
    FAST_LIGHTGBM,
    classification_raw,
    regression_raw,
    spec_from,
    split_frames,
)

LGBM = LightGBMCandidate(**FAST_LIGHTGBM)


def _data(spec: MLSpec, raw: pl.DataFrame) -> TrainingData:
    train, validation, _ = split_frames(spec, raw)
    return prepare(spec, train, validation)


def _grouped() -> tuple[MLSpec, pl.DataFrame]:
    """Counts of ~80 people with ~8 rows each; a person's rows share an effect."""
    raw = regression_raw(640, seed=3)
    person = np.random.default_rng(4).integers(0, 80, raw.height)
    effect = np.random.default_rng(5).normal(0, 1.0, 80)[person]
    raw = raw.with_columns(
        pl.Series("person", person.astype(str)),
        (pl.col("y") + pl.Series(np.round(np.exp(effect)).astype(np.int64))).alias("y"),
    )
    spec = spec_from(
        {"split": {"strategy": "random", "group_columns": ["person"]}}, task="regression"
    )
    return spec, raw


def _temporal() -> tuple[MLSpec, pl.DataFrame]:
    raw = classification_raw(600, seed=2)
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i // 20) for i in range(raw.height)]
    spec = spec_from({"time_column": "day", "split": {"strategy": "temporal"}})
    return spec, raw.with_columns(pl.Series("day", days))


def test_unset_folds_cross_validate_small_data_only() -> None:
    spec = spec_from()
    assert cv_lib.fold_count(spec, 49_999) == cv_lib.AUTO_FOLDS == 5
    assert cv_lib.fold_count(spec, 50_000) == 0
    assert cv_lib.fold_count(spec_from({"split": {"cv_folds": 3}}), 10**7) == 3
    assert cv_lib.fold_count(spec_from({"split": {"cv_folds": 0}}), 100) == 0


def test_a_spec_refuses_one_fold_and_folds_on_a_forecast() -> None:
    with pytest.raises(ValueError, match="cv_folds: 1 is not cross-validation; use 0"):
        spec_from({"split": {"cv_folds": 1}})
    forecast = {
        "task": "forecasting",
        "time_column": "date",
        "target": "co2",
        "metrics": {"primary": "mase", "secondary": []},
        "candidates": {"ets": {}},
        "forecast": {"frequency": "1w", "horizon": 4, "seasonal_period": 52},
        "split": {"cv_folds": 5},
    }
    with pytest.raises(ValueError, match="set 'forecast.folds'"):
        MLSpec.model_validate({**spec_from().model_dump(exclude={"spec_path"}), **forecast})


def test_lightgbm_is_chosen_on_grouped_folds_no_person_on_both_sides() -> None:
    spec, raw = _grouped()
    data = _data(spec, raw)
    model = train_lightgbm(data, LGBM, get_metric("rmse"))
    oof = model.out_of_fold
    assert isinstance(oof, cv_lib.OutOfFold) and len(oof.folds) == 5
    rows = pl.concat([data.train, data.validation], how="vertical_relaxed")
    people = rows["person"].to_numpy()
    for fold in oof.folds:
        assert set(people[fold.fit]).isdisjoint(people[fold.score])
    scored = np.sort(np.concatenate([f.score for f in oof.folds]))
    assert np.array_equal(scored, np.arange(rows.height))  # every row scored exactly once
    assert model.params["cv_folds"] == 5
    assert model.params["cv_folds_made"] == "grouped by ['person']"
    # The final model: the median of the folds' best rounds, fitted on train + validation.
    rounds = int(np.median(model.params["cv_best_iterations"]))
    assert model.params["best_iteration"] == rounds == model.booster.num_trees()
    assert model.params["refit_rows"] == rows.height
    assert model.validation_scores is None


def test_each_fold_is_scored_by_a_fit_on_its_fit_rows_only() -> None:
    spec, raw = _grouped()
    data = _data(spec, raw)
    model = train_tabular(spec, "glm", data, get_metric("rmse"))
    cv = cv_lib.cv_rows(data)
    assert cv is not None and isinstance(model.out_of_fold, cv_lib.OutOfFold)
    for fold, scores in zip(cv.folds, model.out_of_fold.scores, strict=True):
        part = cv.fold(fold)
        alone = train_glm(part, GLMCandidate(family="poisson"))
        np.testing.assert_allclose(scores, alone.predict(part.validation), rtol=1e-10)
        assert "refit" not in alone.params  # a fold's model is only scored


def test_a_classifier_threshold_is_chosen_on_every_out_of_fold_score() -> None:
    spec = spec_from({"split": {"strategy": "stratified"}})
    data = _data(spec, classification_raw(500, seed=7))
    model = train_lightgbm(data, LGBM, get_metric("roc_auc"))
    y, scores = model.out_of_fold.pooled()
    assert len(y) == data.train.height + data.validation.height
    assert model.threshold == choose_threshold(y, scores)


def test_temporal_folds_fit_on_the_past_and_score_the_future() -> None:
    spec, raw = _temporal()
    data = _data(spec, raw)
    model = train_lightgbm(data, LGBM, get_metric("roc_auc"))
    rows = pl.concat([data.train, data.validation], how="vertical_relaxed")
    days = rows["day"].to_numpy()
    folds = model.out_of_fold.folds
    assert model.params["cv_folds_made"] == "time-ordered on 'day' (expanding window)"
    for fold in folds:
        assert days[fold.fit].max() < days[fold.score].min()
    first_scored = min(days[f.score].min() for f in folds)
    assert days.min() < first_scored  # the first block is only ever fitted on


def test_selection_scores_are_the_fold_means_and_baselines_share_the_folds() -> None:
    spec, raw = _grouped()
    splits = pl.concat(split_frames(spec, raw))
    task = task_for(spec)
    fitted = task.fit_candidate(spec, splits, "lightgbm")
    assert fitted.cv is not None and fitted.cv.height == 5
    for name in spec.all_metrics:
        assert fitted.validation[name] == pytest.approx(fitted.cv[name].mean())
    baselines = task.fit_baselines(spec, splits)
    for b in baselines:
        assert b.cv is not None
        assert b.cv["scored_rows"].to_list() == fitted.cv["scored_rows"].to_list()
    table = cv_lib.selection_table(
        "rmse", {"lightgbm": ("candidate", fitted.cv), "mean": ("baseline", baselines[0].cv)}
    )
    assert table.columns == ["model", "role", *[f"fold_{i}" for i in range(1, 6)], "mean", "std"]
    assert table["mean"][0] == pytest.approx(fitted.validation["rmse"], abs=1e-4)
    assert splits.filter(pl.col(SPLIT) == "test").height > 0  # folds never reach the test rows
    fold_rows = int(fitted.cv["scored_rows"].sum())
    assert fold_rows == splits.filter(pl.col(SPLIT) != "test").height


def test_cross_validated_training_is_reproducible_and_its_cache_is_not_pickled() -> None:
    spec, raw = _grouped()
    data = _data(spec, raw)
    first = train_lightgbm(data, LGBM, get_metric("rmse"))
    again = train_lightgbm(data, LGBM, get_metric("rmse"))
    assert first.booster.model_to_string() == again.booster.model_to_string()
    assert first.params == again.params
    assert pickle.loads(pickle.dumps(first)).out_of_fold is None
    assert first.out_of_fold is not None


def test_folds_off_keeps_selection_on_the_validation_split() -> None:
    spec = spec_from({"split": {"cv_folds": 0}}, task="regression")
    data = _data(spec, regression_raw(400))
    model = train_lightgbm(data, LGBM, get_metric("rmse"))
    assert model.out_of_fold is None and "cv_folds" not in model.params
    assert model.validation_scores is not None


def test_default_folds_that_cannot_be_made_fall_back_and_asked_for_ones_fail() -> None:
    spec, raw = _grouped()
    few = raw.with_columns((pl.col("person").cast(pl.Int64) % 4).cast(pl.String).alias("person"))
    data = _data(spec, few)  # 4 people in all: 5 grouped folds cannot be made
    assert cv_lib.cv_rows(data) is None
    assert train_lightgbm(data, LGBM, get_metric("rmse")).out_of_fold is None
    asked = spec.model_copy(update={"split": spec.split.model_copy(update={"cv_folds": 5})})
    with pytest.raises(ValueError, match="split.cv_folds: 5 cannot be made from .* use fewer"):
        cv_lib.cv_rows(_data(asked, few))
