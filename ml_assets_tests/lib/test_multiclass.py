"""Targets of more than two classes through the lib layer: encoding, baselines, the
multinomial GLM, LightGBM multiclass, class weights, evaluation tables and scored rows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from ml_assets.lib import evaluation as eval_lib
from ml_assets.lib import families
from ml_assets.lib.data import SPLIT, DataError, build_features
from ml_assets.lib.imbalance import MulticlassWeights, class_weights
from ml_assets.lib.metrics import get_metric, score
from ml_assets.lib.models import encode_target, prepare, train_baselines, train_glm
from ml_assets.lib.spec import GLMCandidate
from ml_assets.lib.splits import assign_splits, check_proportions
from ml_assets.lib.tasks import task_for
from ml_assets_tests.lib.conftest import FAST_LIGHTGBM, spec_from

CLASSES = ["high", "low", "mid"]  # sorted: the order of the probability columns


def _three_class_frame(n: int = 900, seed: int = 3, shares=(0.3, 0.45, 0.25)) -> pl.DataFrame:
    """Two informative numbers, a categorical and a noise column; the label depends on x1
    and x2 through a multinomial logit."""
    rng = np.random.default_rng(seed)
    x1, x2, noise = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], n)
    logits = np.stack([2 * x1, -1.5 * x1 + x2, -x2 + (colour == "red")], axis=1)
    logits += np.log(np.asarray(shares))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(CLASSES, p=row) for row in p])
    return pl.DataFrame({"x1": x1, "x2": x2, "noise": noise, "colour": colour, "y": y})


def _spec(**overrides):
    base = {
        "name": "three",
        "target": "y",
        "categorical": ["colour"],
        "split": {"strategy": "stratified", "seed": 5, "cv_folds": 0},
        "metrics": {"primary": "log_loss", "secondary": ["roc_auc", "macro_f1", "accuracy"]},
        "candidates": {"glm": {}, "lightgbm": FAST_LIGHTGBM},
    }
    return spec_from({**base, **overrides})


def _splits(spec, frame=None):
    features = build_features(spec, _three_class_frame() if frame is None else frame)
    return assign_splits(spec, features)


def _data(spec, splits):
    return prepare(
        spec,
        splits.filter(pl.col(SPLIT) == "train"),
        splits.filter(pl.col(SPLIT) == "validation"),
    )


def test_the_target_is_a_class_index_in_sorted_label_order() -> None:
    spec = _spec()
    data = _data(spec, _splits(spec))
    assert data.classes == CLASSES and data.positive is None and data.n_classes == 3
    assert set(np.unique(data.y_train)) == {0.0, 1.0, 2.0}
    labels = data.train["y"].to_list()
    assert [CLASSES[int(i)] for i in data.y_train[:20]] == labels[:20]


def test_a_label_the_training_rows_lack_is_refused_by_name() -> None:
    spec = _spec()
    rows = pl.DataFrame({"y": ["low", "unheard"]})
    with pytest.raises(
        DataError, match=r"label\(s\) \['unheard'\].*knows \['high', 'low', 'mid'\]"
    ):
        encode_target(spec, rows, None, CLASSES)


def test_stratified_splits_keep_every_class_share() -> None:
    spec = _spec()
    splits = _splits(spec)
    check = check_proportions(spec, splits)
    assert check.passed, check.detail
    assert {f"test_{c}_share" for c in CLASSES} <= set(check.metadata)


def test_baselines_predict_the_class_shares_and_the_majority() -> None:
    spec = _spec()
    data = _data(spec, _splits(spec))
    prior, majority = train_baselines(data)
    shares = np.bincount(data.y_train.astype(int)) / len(data.y_train)
    p = prior.predict(data.validation)
    assert p.shape == (data.validation.height, 3)
    np.testing.assert_allclose(p[0], shares)
    assert majority.predict(data.validation)[0].tolist() == np.eye(3)[np.argmax(shares)].tolist()
    assert majority.params["majority_class"] == CLASSES[int(np.argmax(shares))]


def test_the_multinomial_glm_is_statsmodels_mnlogit_on_the_standardised_design() -> None:
    spec = _spec(split={"strategy": "stratified", "seed": 5, "cv_folds": 0, "refit": False})
    data = _data(spec, _splits(spec))
    model = families.fit_glm(data, GLMCandidate())
    assert model.name == "glm_multinomial" and model.classes == CLASSES
    p = model.predict(data.validation)
    assert p.shape == (data.validation.height, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert model.prep is not None
    direct = sm.MNLogit(data.y_train.astype(int), model.prep.design(data.train)).fit(disp=False)
    np.testing.assert_allclose(p, direct.predict(model.prep.design(data.validation)), atol=1e-6)
    # Coefficients per non-reference class, named "<class> vs <first class>".
    assert set(model.coefficients["class"].unique()) == {"low vs high", "mid vs high"}
    x1 = model.coefficients.filter((pl.col("feature") == "x1") & (pl.col("class") == "low vs high"))
    assert x1["coefficient"].item() < 0  # x1 raises "high" against every other class


def test_a_glm_family_that_cannot_fit_the_classes_is_refused() -> None:
    spec = _spec()
    data = _data(spec, _splits(spec))
    with pytest.raises(ValueError, match="family 'binomial' cannot fit target 'y' with 3 classes"):
        train_glm(data, GLMCandidate(family="binomial"))


def test_lightgbm_multiclass_beats_the_prior_and_labels_the_most_probable_class() -> None:
    spec = _spec()
    splits = _splits(spec)
    data = _data(spec, splits)
    model = families.train_tabular(spec, "lightgbm", data, get_metric("log_loss"))
    p = model.predict(data.validation)
    assert p.shape == (data.validation.height, 3) and model.classes == CLASSES
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert model.booster.params["objective"] == "multiclass"
    assert model.booster.params["num_class"] == 3
    prior = train_baselines(data)[0]
    loss = get_metric("log_loss")
    ours = score(loss, data.y_validation, p)
    assert ours < score(loss, data.y_validation, prior.predict(data.validation)) - 0.1
    np.testing.assert_array_equal(model.labels(p), np.argmax(p, axis=1))
    importance = model.importance(data.validation)
    assert importance is not None
    assert importance["feature"].head(2).sort().to_list() == ["x1", "x2"]


def test_class_weights_over_k_classes_undo_their_odds() -> None:
    spec = _spec(class_weight="balanced")
    y = np.array([0] * 80 + [1] * 15 + [2] * 5, dtype=float)
    weights = class_weights(spec, y, None, None, CLASSES)
    assert isinstance(weights, MulticlassWeights)
    np.testing.assert_allclose(weights.weights, [100 / (3 * 80), 100 / (3 * 15), 100 / (3 * 5)])
    assert weights.rows(np.array([2.0, 0.0])).tolist() == [weights.weights[2], weights.weights[0]]
    true = np.array([[0.7, 0.2, 0.1], [0.2, 0.2, 0.6]])
    weighted = true * np.asarray(weights.weights)
    weighted /= weighted.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(weights.corrected(weighted), true)
    named = class_weights(spec_from({"class_weight": {"mid": 4}}), y, None, None, CLASSES)
    assert named is not None and named.weights == (1.0, 1.0, 4.0)
    with pytest.raises(ValueError, match=r"labels \['medium'\]"):
        class_weights(spec_from({"class_weight": {"medium": 4}}), y, None, None, CLASSES)


def test_auto_weighting_of_a_rare_class_weighs_lightgbm_and_leaves_the_glm_unweighted() -> None:
    spec = _spec(class_weight="auto")
    frame = _three_class_frame(n=1500, shares=(0.005, 0.6, 0.395), seed=11)
    data = _data(spec, _splits(spec, frame))
    assert np.bincount(data.y_train.astype(int))[0] / len(data.y_train) < 0.05
    lgbm = families.train_tabular(spec, "lightgbm", data, get_metric("log_loss"))
    assert set(lgbm.params["class_weight_tried"]) == {"none", "balanced"}
    glm = families.train_tabular(spec, "glm", data, get_metric("log_loss"))
    assert glm.params["class_weight"].startswith("none (glm takes no class weights")
    with pytest.raises(ValueError, match="multinomial GLM .* fits unweighted"):
        families.fit_glm(
            _data(_spec(class_weight="balanced"), _splits(spec, frame)), GLMCandidate()
        )


def test_evaluation_has_per_class_rows_a_confusion_matrix_and_top_class_calibration() -> None:
    spec = _spec()
    splits = _splits(spec)
    data = _data(spec, splits)
    model = families.train_tabular(spec, "glm", data, get_metric("log_loss"))
    test = splits.filter(pl.col(SPLIT) == "test")
    ev = eval_lib.evaluate(spec, test, model, train_baselines(data), "prior")
    assert ev.classes == CLASSES
    assert ev.per_class is not None and ev.per_class["class"].to_list() == CLASSES
    assert ev.per_class["rows"].sum() == test.height
    assert ev.confusion is not None
    assert ev.confusion.columns == ["actual", *[f"predicted {c}" for c in CLASSES]]
    assert ev.confusion.drop("actual").to_numpy().sum() == test.height
    correct = ev.confusion.drop("actual").to_numpy().trace()
    assert ev.candidate.metrics["accuracy"].value == pytest.approx(correct / test.height)
    assert ev.vs_baseline.lower > 0  # far better than the class shares
    assert ev.calibration is not None and ev.calibration["mean_predicted"].min() >= 1 / 3 - 1e-9


def test_scored_rows_hold_each_class_probability_and_the_label_by_name() -> None:
    spec = _spec()
    splits = _splits(spec)
    data = _data(spec, splits)
    model = families.train_tabular(spec, "glm", data, get_metric("log_loss"))
    task = task_for(spec)
    rows = splits.filter(pl.col(SPLIT) == "test").drop("y")
    scored = task.score(spec, model, "7", rows)
    p = model.predict(rows)
    for k, c in enumerate(CLASSES):
        np.testing.assert_allclose(scored[f"proba_{c}"].to_numpy(), p[:, k])
    np.testing.assert_allclose(scored["score"].to_numpy(), p.max(axis=1))
    assert scored["predicted_label"].to_list() == [CLASSES[i] for i in p.argmax(axis=1)]
    np.testing.assert_allclose(task.scores_of(model, scored), p)


def test_fairness_with_more_than_two_classes_is_refused() -> None:
    spec = _spec(fairness={"columns": ["colour"]})
    with pytest.raises(DataError, match="'fairness' compares rates .* has 3"):
        _data(spec, _splits(spec))
