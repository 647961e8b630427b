"""Rare classes: class weights (corrected back to probabilities), the threshold chosen for
the spec's label metric, auto weighting chosen by the selection score, and the metrics of
rare-event work (precision at k, recall at a precision)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from ml_assets.lib import imbalance
from ml_assets.lib.families import train_tabular
from ml_assets.lib.metrics import get_metric, score
from ml_assets.lib.models import class_weights_of, prepare, validation_metrics
from ml_assets.lib.rare_events import rare_events
from ml_assets.lib.thresholds import choose_threshold
from ml_assets_tests.lib.conftest import FAST_LIGHTGBM, spec_from, split_frames

RARE = {
    "metrics": {"primary": "f1", "secondary": ["average_precision"]},
    "split": {"strategy": "stratified", "cv_folds": 0},
    "candidates": {"glm": {}, "lightgbm": FAST_LIGHTGBM},
}


def _rare_data(weighting: str = "auto", rows: int = 8000):
    spec = spec_from({**RARE, "class_weight": weighting})
    train, validation, _ = split_frames(spec, rare_events(rows, 0.02, seed=3))
    return spec, prepare(spec, train, validation)


def test_the_generator_gives_the_share_asked_for_and_is_seeded() -> None:
    frame = rare_events(50_000, 0.02, seed=1)
    assert frame["y"].mean() == pytest.approx(0.02, abs=0.003)
    assert frame.equals(rare_events(50_000, 0.02, seed=1))
    assert not frame.equals(rare_events(50_000, 0.02, seed=2))
    peaked = rare_events(50_000, 0.02, seed=1, shape="peaked")
    assert peaked["y"].mean() == pytest.approx(0.02, abs=0.003)
    # risk peaks at x0 = 1.5: positives are rarer on both sides of the middle band
    band = peaked.group_by(peaked["x0"].cut([0.5, 2.5]).alias("band")).agg(pl.col("y").mean())
    rate = dict(zip(band["band"].cast(pl.String), band["y"], strict=True))
    middle = rate["(0.5, 2.5]"]
    assert middle > 2 * rate["(-inf, 0.5]"] and middle > 1.5 * rate["(2.5, inf]"]
    with pytest.raises(ValueError, match="shape must be one of mixed, peaked"):
        rare_events(100, 0.02, shape="flat")


def test_balanced_weights_and_weights_per_label() -> None:
    y = np.array([1] * 10 + [0] * 90, dtype=float)
    spec = spec_from({"class_weight": "balanced"})
    w = imbalance.class_weights(spec, y, 1, 0)
    assert w is not None and (w.negative, w.positive) == pytest.approx((100 / 180, 100 / 20))
    assert w.rows(y).sum() == pytest.approx(100.0)  # both classes carry half the weight
    by_label = imbalance.class_weights(spec_from({"class_weight": {1: 4.0}}), y, 1, 0)
    assert by_label is not None and (by_label.negative, by_label.positive) == (1.0, 4.0)
    with pytest.raises(ValueError, match=r"labels \['yes'\] that target 'y' does not have"):
        imbalance.class_weights(spec_from({"class_weight": {"yes": 2.0}}), y, 1, 0)
    assert imbalance.class_weights(spec_from({"class_weight": "none"}), y, 1, 0) is None


def test_a_weighted_fit_predicts_probabilities_of_the_real_classes() -> None:
    """Dividing the weights' odds back out: a weighted logistic model's corrected scores
    average to the real positive share, its raw scores to about a half."""
    spec, data = _rare_data("balanced")
    weights = class_weights_of(data)
    assert weights is not None
    model = train_tabular(spec, "glm", data, get_metric("f1"))
    assert model.class_weights == weights or model.params["class_weight"] == "balanced"
    scores = model.predict(data.validation)
    assert scores.mean() == pytest.approx(data.y_train.mean(), abs=0.01)
    design = model.prep.design(data.validation)  # type: ignore[attr-defined]
    raw = np.asarray(model.result.predict(design))  # type: ignore[attr-defined]
    assert raw.mean() > 0.2  # the weighted fit alone thinks positives are common
    np.testing.assert_allclose(model.class_weights.corrected(raw), scores)


def test_auto_weighting_tries_both_and_keeps_the_better_validation_score() -> None:
    spec, data = _rare_data("auto")
    assert imbalance.weighting_options(spec, data.y_train) == ["none", "balanced"]
    primary = get_metric("f1")
    for family in ("glm", "lightgbm"):
        model = train_tabular(spec, family, data, primary)
        tried = model.params["class_weight_tried"]
        assert set(tried) == {"none", "balanced"}
        assert model.params["class_weight"] == max(tried, key=lambda o: (tried[o], o == "none"))
        kept = validation_metrics(model, data, ["f1"])["f1"]
        assert kept == pytest.approx(max(tried.values()), abs=1e-6)
    common = spec_from({"class_weight": "auto"})
    assert imbalance.weighting_options(common, np.array([0.0, 1.0] * 50)) == ["none"]


def test_the_threshold_chosen_on_validation_finds_the_rare_class() -> None:
    """At 0.5 a calibrated model of 2% positives labels almost nothing positive; the
    threshold chosen for F1 on validation gives it a real F1."""
    spec, data = _rare_data("none")
    model = train_tabular(spec, "lightgbm", data, get_metric("f1"))
    scores, y = model.validation_scores, data.y_validation
    assert scores is not None and model.threshold < 0.5
    at_half = score(get_metric("f1"), y, (scores >= 0.5).astype(np.int8))
    chosen = score(get_metric("f1"), y, model.labels(scores))
    assert chosen > max(2 * at_half, at_half + 0.1)


@pytest.mark.parametrize("metric", ["f1", "accuracy", "balanced_accuracy", "precision", "recall"])
def test_the_threshold_maximises_the_metric_asked_for(metric: str) -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(int)
    scores = np.round(np.clip(0.3 * y + 0.7 * rng.random(400), 0, 1), 2)  # ties included
    threshold = choose_threshold(y, scores, metric)
    m = get_metric(metric)
    best = max(score(m, y, (scores >= t).astype(int)) for t in np.unique(scores))
    assert score(m, y, (scores >= threshold).astype(int)) == pytest.approx(best)


def test_the_spec_names_the_threshold_metric() -> None:
    assert spec_from().threshold_metric == "f1"  # roc_auc, log_loss, f1: f1 is the label one
    assert spec_from({"metrics": {"primary": "balanced_accuracy"}}).threshold_metric == (
        "balanced_accuracy"
    )
    chosen = spec_from({"metrics": {"primary": "roc_auc", "threshold_for": "recall"}})
    assert chosen.threshold_metric == "recall"
    with pytest.raises(ValueError, match="chosen for one of"):
        spec_from({"metrics": {"primary": "roc_auc", "threshold_for": "roc_auc"}})
    with pytest.raises(ValueError, match="class_weight is for classification"):
        spec_from({"class_weight": "balanced"}, task="regression")
    with pytest.raises(ValueError, match="every weight must be above 0"):
        spec_from({"class_weight": {1: 0.0}})


def test_precision_at_k_and_recall_at_precision() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    assert score(get_metric("precision_at_3"), y, p) == pytest.approx(2 / 3)
    assert score(get_metric("precision_at_20pct"), y, p) == pytest.approx(1 / 2)
    assert score(get_metric("recall_at_precision_60"), y, p) == pytest.approx(2 / 3)
    assert score(get_metric("recall_at_precision_90"), y, p) == pytest.approx(1 / 3)
    assert score(get_metric("precision_at_100"), y, p) == pytest.approx(0.3)  # k > rows: all
    spec = spec_from({"metrics": {"primary": "precision_at_5pct"}})
    assert spec.primary_metric == "precision_at_5pct"
    with pytest.raises(ValueError, match=r"precision_at_100 \(any number\)"):
        spec_from({"metrics": {"primary": "precision_at_0"}})


def test_an_unweighted_glm_matches_statsmodels_with_no_weights() -> None:
    """Weighting off leaves the GLM exactly the plain statsmodels Logit it was."""
    spec, data = _rare_data("none")
    model = train_tabular(spec, "glm", data, get_metric("f1"))
    assert model.class_weights is None and "class_weight_tried" not in model.params
    both = data.train.vstack(data.validation)
    y = np.concatenate([data.y_train, data.y_validation])
    plain = sm.GLM(y, model.prep.design(both), family=sm.families.Binomial()).fit()  # type: ignore[attr-defined]
    np.testing.assert_allclose(
        model.predict(data.validation), plain.predict(model.prep.design(data.validation)), rtol=1e-8
    )  # type: ignore[attr-defined]


def test_tied_scores_share_the_places_at_the_cut() -> None:
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    constant = np.full(10, 0.5)  # a baseline: precision at k is the positive share
    assert score(get_metric("precision_at_3"), y, constant) == pytest.approx(0.2)
    assert score(get_metric("precision_at_3"), y[::-1], constant) == pytest.approx(0.2)
    assert score(get_metric("precision_at_7pct"), np.ones(100), np.arange(100.0)) == 1.0


def test_precision_or_recall_alone_never_sets_the_threshold_by_default() -> None:
    spec = spec_from({"metrics": {"primary": "recall", "secondary": ["precision"]}})
    assert spec.threshold_metric == "f1"
    assert choose_threshold(np.zeros(5), np.linspace(0, 1, 5), "recall") == 0.5


def test_rare_event_metrics_on_many_rows_resample_a_sample() -> None:
    from ml_assets.lib import intervals

    rng = np.random.default_rng(0)
    y = (rng.random(300_000) < 0.02).astype(float)
    p = np.clip(0.3 * y + rng.random(300_000) * 0.7, 0, 1)
    metric = get_metric("precision_at_1pct")
    est = intervals.metric_ci(metric, y, p, 200, 0.95, 0, 20_000)
    assert est.value == pytest.approx(score(metric, y, p))
    assert est.lower < est.value < est.upper and est.upper - est.lower < 0.1


def test_weights_name_a_boolean_target_as_yaml_writes_it() -> None:
    y = np.array([1.0, 0.0, 0.0, 0.0])
    for key in (True, 1, "true", "True"):
        spec = spec_from({"class_weight": {key: 3.0}})
        weights = imbalance.class_weights(spec, y, True, False)
        assert weights is not None and (weights.negative, weights.positive) == (1.0, 3.0)
    with pytest.raises(ValueError, match="labels \\['maybe'\\]"):
        imbalance.class_weights(spec_from({"class_weight": {"maybe": 2.0}}), y, True, False)
