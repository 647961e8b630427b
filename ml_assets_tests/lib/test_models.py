"""models.py: baselines, GLM and LightGBM candidates on small synthetic problems."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import polars as pl
import pytest

from ml_assets.lib import models
from ml_assets.lib.cores import available_threads
from ml_assets.lib.data import ROW_ID
from ml_assets.lib.lightgbm_search import lightgbm_objective, train_lightgbm
from ml_assets.lib.metrics import get_metric, score
from ml_assets.lib.models import (
    ConstantModel,
    TrainingData,
    choose_threshold,
    encode_target,
    glm_family,
    prepare,
    train_baselines,
    train_glm,
    validation_metrics,
    with_validation_rows,
)
from ml_assets.lib.spec import GLMCandidate, LightGBMCandidate
from ml_assets_tests.lib.conftest import Fitted, classification_raw, spec_from, split_frames


def test_prepare_takes_only_train_and_validation() -> None:
    assert list(inspect.signature(prepare).parameters) == ["spec", "train", "validation"]
    assert not any("test" in f.name for f in dataclasses.fields(TrainingData))


def test_training_data_never_holds_test_rows(trained_classification: Fitted) -> None:
    t = trained_classification
    data = t.data
    test_ids = set(t.test[ROW_ID].to_list())
    seen = set(data.train[ROW_ID].to_list()) | set(data.validation[ROW_ID].to_list())
    assert test_ids and not (test_ids & seen)
    assert set(data.train["__split"].unique().to_list()) == {"train"}
    assert set(data.validation["__split"].unique().to_list()) == {"validation"}
    assert len(data.y_train) == data.train.height
    assert len(data.y_validation) == data.validation.height


def test_prepare_features_categoricals_and_targets(trained_classification: Fitted) -> None:
    data = trained_classification.data
    assert data.features == ["x1", "x2", "color"]
    assert data.categorical == ["color"]
    assert data.positive == 1
    np.testing.assert_array_equal(data.y_train, data.train["y"].to_numpy().astype(float))
    assert set(np.unique(data.y_train)) == {0.0, 1.0}


def test_string_target_is_encoded_with_larger_value_positive() -> None:
    spec = spec_from()
    raw = classification_raw(100).with_columns(
        pl.when(pl.col("y") == 1).then(pl.lit("yes")).otherwise(pl.lit("no")).alias("y")
    )
    train, validation, _ = split_frames(spec, raw)
    data = prepare(spec, train, validation)
    assert data.positive == "yes"
    np.testing.assert_array_equal(data.y_train, (train["y"] == "yes").cast(int).to_numpy())


def test_encode_target_for_regression_is_float() -> None:
    spec = spec_from(task="regression")
    y = encode_target(spec, pl.DataFrame({"y": [1, 4, 0]}), None)
    assert y.dtype == np.float64 and y.tolist() == [1.0, 4.0, 0.0]


def test_classification_baselines(trained_classification: Fitted) -> None:
    data = trained_classification.data
    prior, majority = trained_classification.baselines
    share = float(data.y_train.mean())
    assert (prior.name, majority.name) == ("prior", "majority")
    assert prior.role == majority.role == "baseline"
    np.testing.assert_array_equal(prior.predict(data.validation), np.full(80, share))
    np.testing.assert_array_equal(
        majority.predict(data.validation), np.full(80, float(share >= 0.5))
    )
    assert prior.importance(data.validation) is None


def test_majority_baseline_predicts_zero_when_negatives_dominate() -> None:
    spec = spec_from()
    frame = pl.DataFrame({"x": np.arange(10.0), "y": [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]})
    data = prepare(spec, frame, frame)
    prior, majority = train_baselines(data)
    assert prior.predict(frame)[0] == pytest.approx(0.2)
    assert majority.predict(frame)[0] == 0.0


def test_regression_baselines(trained_regression: Fitted) -> None:
    data = trained_regression.data
    mean, median = trained_regression.baselines
    assert (mean.name, median.name) == ("mean", "median")
    assert mean.predict(data.validation)[0] == pytest.approx(float(data.y_train.mean()))
    assert median.predict(data.validation)[0] == float(np.median(data.y_train))
    assert isinstance(mean, ConstantModel) and mean.params == {"strategy": "mean"}


def test_glm_and_lightgbm_beat_prior_on_validation(trained_classification: Fitted) -> None:
    t = trained_classification
    prior = validation_metrics(t.baselines[0], t.data, ["roc_auc", "log_loss"])
    assert prior["roc_auc"] == 0.5
    for model in (t.glm, t.lightgbm):
        got = validation_metrics(model, t.data, ["roc_auc", "log_loss"])
        assert got["roc_auc"] > 0.7, (model.name, got)
        assert got["log_loss"] < prior["log_loss"], (model.name, got)
        scores = model.predict(t.validation)
        assert scores.shape == (t.validation.height,)
        assert ((scores > 0) & (scores < 1)).all()


def test_glm_and_lightgbm_beat_mean_on_validation_for_counts(trained_regression: Fitted) -> None:
    t = trained_regression
    mean = validation_metrics(t.baselines[0], t.data, ["rmse", "poisson_deviance"])
    for model in (t.glm, t.lightgbm):
        got = validation_metrics(model, t.data, ["rmse", "poisson_deviance"])
        assert got["rmse"] < 0.9 * mean["rmse"], (model.name, got, mean)
        assert got["poisson_deviance"] < mean["poisson_deviance"]
    assert t.glm.name == "glm_poisson"  # counts: Poisson family chosen automatically
    assert t.lightgbm.params["objective"] == "poisson"


def test_glm_recovers_the_signal_direction(trained_classification: Fitted) -> None:
    coefficients = trained_classification.glm.importance(trained_classification.test)
    assert coefficients is not None
    coef = dict(zip(coefficients["feature"], coefficients["coefficient"], strict=True))
    assert set(coef) == {"const", "x1", "x2", "color=green", "color=red"}
    assert coef["x1"] > 0.8 and coef["x2"] < -0.4
    # 'blue' is the dropped reference level and the only one that raises the odds
    assert coef["color=green"] < 0 and coef["color=red"] < 0
    assert coefficients["importance"].to_list() == [abs(c) for c in coefficients["coefficient"]]


def test_lightgbm_importance_ranks_the_strongest_feature_first(
    trained_classification: Fitted,
) -> None:
    importance = trained_classification.lightgbm.importance(trained_classification.test)
    assert importance is not None
    assert sorted(importance["feature"].to_list()) == ["color", "x1", "x2"]
    assert importance["feature"][0] == "x1"
    assert importance["importance"].to_list() == sorted(importance["importance"], reverse=True)
    assert (importance["importance"] >= 0).all()


def test_lightgbm_training_is_deterministic(trained_classification: Fitted) -> None:
    t = trained_classification
    assert t.spec.candidates.lightgbm is not None
    again = train_lightgbm(t.data, t.spec.candidates.lightgbm, get_metric("roc_auc"))
    np.testing.assert_array_equal(again.predict(t.test), t.lightgbm.predict(t.test))
    assert again.params == t.lightgbm.params
    assert again.threshold == t.lightgbm.threshold


def test_lightgbm_params_record_the_search(trained_classification: Fitted) -> None:
    params = trained_classification.lightgbm.params
    assert params["trials"] == 3
    assert params["objective"] == "binary"
    assert params["seed"] == 42
    assert 1 <= params["best_iteration"] <= 200
    assert 4 <= params["num_leaves"] <= 64 and isinstance(params["num_leaves"], int)
    assert 0.01 <= params["learning_rate"] <= 0.3


def test_lightgbm_uses_every_available_core_and_records_the_count(
    trained_classification: Fitted,
) -> None:
    import os

    assert available_threads() == len(os.sched_getaffinity(0))
    assert trained_classification.lightgbm.params["num_threads"] == available_threads()
    t = trained_classification
    pinned = LightGBMCandidate(budget=1, num_boost_round=20, params={"num_threads": 1})
    model = train_lightgbm(t.data, pinned, get_metric("roc_auc"))
    assert model.params["num_threads"] == 1
    again = train_lightgbm(t.data, pinned, get_metric("roc_auc"))  # deterministic at 1 thread
    np.testing.assert_array_equal(again.predict(t.test), model.predict(t.test))


def _train_only(data: TrainingData) -> TrainingData:
    spec = data.spec
    return dataclasses.replace(
        data, spec=spec.model_copy(update={"split": spec.split.model_copy(update={"refit": False})})
    )


def test_threshold_is_chosen_on_validation(trained_classification: Fitted) -> None:
    """On the validation scores of the fit on train rows, before the refit on train +
    validation: scores of rows a model learned from would choose a biased threshold."""
    t = trained_classification
    train_only = train_glm(_train_only(t.data), GLMCandidate())
    np.testing.assert_allclose(t.glm.validation_scores, train_only.predict(t.validation))
    for model in (t.glm, t.lightgbm):
        assert model.validation_scores is not None
        assert model.threshold == choose_threshold(t.data.y_validation, model.validation_scores)
        assert 0 < model.threshold < 1


def test_the_final_model_is_refit_on_train_and_validation_rows(
    trained_classification: Fitted,
) -> None:
    t = trained_classification
    both = with_validation_rows(t.data)
    assert both.train.height == t.data.train.height + t.validation.height
    alone = train_glm(_train_only(both), GLMCandidate())  # a plain fit on train + validation
    assert t.glm.coefficients is not None and alone.coefficients is not None
    np.testing.assert_allclose(
        t.glm.coefficients["coefficient"].to_numpy(), alone.coefficients["coefficient"].to_numpy()
    )
    for model in (t.glm, t.lightgbm):
        assert model.params["refit"] == "train+validation"
        assert model.params["refit_rows"] == both.train.height
    assert t.lightgbm.booster.num_trees() == t.lightgbm.params["best_iteration"]
    train_only = _train_only(t.data)
    assert "refit" not in train_glm(train_only, GLMCandidate()).params


def test_an_unset_refit_refits_up_to_a_row_count(
    trained_classification: Fitted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unset ``split.refit`` refits up to REFIT_MAX_ROWS train + validation rows; above it
    the fit on train is the model; a spec's true or false holds at any size."""
    data = trained_classification.data
    assert data.spec.split.refit is None and data.refits
    monkeypatch.setattr(models, "REFIT_MAX_ROWS", data.train.height + data.validation.height - 1)
    assert not data.refits
    assert "refit" not in train_glm(data, GLMCandidate()).params
    assert _with_refit(data, True).refits and not _with_refit(data, False).refits


def _with_refit(data: TrainingData, refit: bool) -> TrainingData:
    split = data.spec.split.model_copy(update={"refit": refit})
    return dataclasses.replace(data, spec=data.spec.model_copy(update={"split": split}))


def test_glm_fit_uses_train_rows_and_threshold_uses_validation_rows(
    trained_classification: Fitted,
) -> None:
    t = trained_classification
    # Same training rows, validation labels inverted: same coefficients, different threshold.
    data = _train_only(t.data)
    flipped = dataclasses.replace(data, y_validation=1.0 - data.y_validation)
    reference = train_glm(data, GLMCandidate())
    glm = train_glm(flipped, GLMCandidate())
    assert glm.coefficients is not None and t.glm.coefficients is not None
    np.testing.assert_allclose(
        glm.coefficients["coefficient"].to_numpy(),
        reference.coefficients["coefficient"].to_numpy(),  # type: ignore[union-attr]
    )
    assert glm.threshold == choose_threshold(flipped.y_validation, glm.predict(t.validation))
    assert glm.threshold != reference.threshold


def test_choose_threshold_maximises_f1() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    assert choose_threshold(y, scores) == 0.6
    labels = (scores >= choose_threshold(y, scores)).astype(int)
    assert score(get_metric("f1"), y, labels) == 1.0


def test_model_labels_use_the_threshold(trained_classification: Fitted) -> None:
    glm = trained_classification.glm
    scores = np.array([glm.threshold - 1e-9, glm.threshold, glm.threshold + 0.01])
    assert glm.labels(scores).tolist() == [0, 1, 1]


def test_validation_metrics_use_labels_for_label_metrics(trained_classification: Fitted) -> None:
    t = trained_classification
    got = validation_metrics(t.glm, t.data, ["f1", "roc_auc"])
    scores = t.glm.validation_scores  # of the fit on train rows, not of the refit
    assert scores is not None
    assert got["f1"] == score(get_metric("f1"), t.data.y_validation, t.glm.labels(scores))
    assert got["roc_auc"] == score(get_metric("roc_auc"), t.data.y_validation, scores)


def test_family_and_objective_choice(trained_classification, trained_regression) -> None:
    assert glm_family(trained_classification.data, GLMCandidate()) == "binomial"
    assert glm_family(trained_regression.data, GLMCandidate()) == "poisson"
    assert glm_family(trained_regression.data, GLMCandidate(family="gaussian")) == "gaussian"
    assert lightgbm_objective(trained_classification.data, LightGBMCandidate()) == "binary"
    assert lightgbm_objective(trained_regression.data, LightGBMCandidate()) == "poisson"
    continuous = dataclasses.replace(
        trained_regression.data, y_train=trained_regression.data.y_train + 0.5
    )
    assert not continuous.is_count
    assert glm_family(continuous, GLMCandidate()) == "gaussian"
    assert lightgbm_objective(continuous, LightGBMCandidate()) == "regression"


def test_models_score_unseen_categories(trained_classification: Fitted) -> None:
    t = trained_classification
    frame = t.test.head(3).with_columns(pl.lit("purple").alias("color"))
    for model in (t.glm, t.lightgbm):
        scores = model.predict(frame)
        assert scores.shape == (3,) and np.isfinite(scores).all()


def _halving_data() -> TrainingData:
    spec = spec_from({"candidates": {"lightgbm": {"budget": 4}}, "split": {"cv_folds": 0}})
    train, validation, _ = split_frames(spec, classification_raw(4000, seed=5))
    return prepare(spec, train, validation)


def test_search_on_many_rows_is_a_successive_halving_recorded_in_params() -> None:
    """Trials fit a seeded subsample; the finalists are refit on every fit row; the params
    say so, and the run is reproducible."""
    data = _halving_data()
    cfg = LightGBMCandidate(budget=4, num_boost_round=60, search_rows=1000, finalists=2)
    model = train_lightgbm(data, cfg, get_metric("roc_auc"))
    fit_rows = len(data.y_train) - round(len(data.y_train) * cfg.early_stopping_fraction)
    assert model.params["search"] == "successive halving"
    assert model.params["search_fit_rows"] == 1000
    assert model.params["finalists_refit_on_rows"] == fit_rows > 1000
    assert model.params["finalists"] == 2 and model.params["trials"] == 4
    again = train_lightgbm(data, cfg, get_metric("roc_auc"))
    np.testing.assert_array_equal(again.predict(data.validation), model.predict(data.validation))
    auc = score(get_metric("roc_auc"), data.y_validation, model.predict(data.validation))
    assert auc > 0.8  # the refit on every row is a real model of the signal


def test_finalist_refit_on_every_row_equals_a_direct_fit_with_its_params() -> None:
    """The winner's booster is the fit of its params on all fit rows, not the subsample fit."""
    data = _halving_data()
    cfg = LightGBMCandidate(budget=3, num_boost_round=40, search_rows=1000, finalists=1)
    model = train_lightgbm(data, cfg, get_metric("roc_auc"))
    chosen = {k: model.params[k] for k in cfg.search}
    direct = train_lightgbm(
        data,
        LightGBMCandidate(budget=1, num_boost_round=40, params={**cfg.params, **chosen}, search={}),
        get_metric("roc_auc"),
    )
    np.testing.assert_allclose(direct.predict(data.validation), model.predict(data.validation))


def test_small_data_search_runs_every_trial_on_every_row(trained_classification: Fitted) -> None:
    assert "search" not in trained_classification.lightgbm.params


def test_validation_scores_cache_matches_predict_and_is_not_pickled(
    trained_classification: Fitted,
) -> None:
    import pickle

    t = trained_classification
    model = t.lightgbm
    assert model.validation_scores is not None and t.spec.candidates.lightgbm is not None
    # The scores of the search's best fit on train rows, before the refit on train + validation.
    train_only = train_lightgbm(
        _train_only(t.data), t.spec.candidates.lightgbm, get_metric(t.spec.primary_metric)
    )
    np.testing.assert_allclose(
        model.validation_scores, train_only.predict(t.validation), rtol=1e-12
    )
    assert not np.allclose(model.validation_scores, model.predict(t.validation))
    assert pickle.loads(pickle.dumps(model)).validation_scores is None
    assert model.validation_scores is not None  # pickling does not touch the live model


def test_training_data_is_freed_after_training_in_a_fresh_process() -> None:
    """Nothing keeps the training rows alive once a model is trained: a library imported
    lazily during training could keep the caller's frames (and their data) in a stored
    traceback for the rest of the process."""
    import subprocess
    import sys

    script = """
import gc, weakref
from ml_assets.lib.metrics import get_metric
from ml_assets.lib.lightgbm_search import train_lightgbm
from ml_assets.lib.models import prepare, train_glm
from ml_assets.lib.spec import GLMCandidate, LightGBMCandidate
from ml_assets_tests.lib.conftest import classification_raw, spec_from, split_frames

def train():
    spec = spec_from()
    train, validation, _ = split_frames(spec, classification_raw(600))
    data = prepare(spec, train, validation)
    train_lightgbm(data, LightGBMCandidate(budget=2, num_boost_round=20), get_metric("roc_auc"))
    train_glm(data, GLMCandidate())
    return weakref.ref(data), weakref.ref(train)

refs = train()
gc.collect()
assert all(r() is None for r in refs), "training data still referenced after training"
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_refit_keeps_its_chosen_rounds_whatever_the_users_params_say(
    trained_classification: Fitted,
) -> None:
    """Early stopping or a round count among the user's LightGBM params steer the search;
    the refit on train + validation has no rows to stop on and uses the rounds chosen."""
    t = trained_classification
    assert t.spec.candidates.lightgbm is not None
    cfg = t.spec.candidates.lightgbm.model_copy(update={"params": {"early_stopping_round": 3}})
    model = train_lightgbm(t.data, cfg, get_metric("roc_auc"))
    assert model.params["refit"] == "train+validation"
    assert model.booster.num_trees() == model.params["best_iteration"]
