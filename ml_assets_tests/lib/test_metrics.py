"""metrics.py: metric registry, bootstrap intervals and paired improvements."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml_assets.lib.metrics import (
    Estimate,
    bootstrap_ci,
    get_metric,
    metric_names_for,
    paired_bootstrap_improvement,
    relative_improvement,
    score,
)


def _classification(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, an informative score and an uninformative one."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    good = np.clip(0.5 + 0.15 * (2 * y - 1) + rng.normal(0, 0.2, size=n), 0.01, 0.99)
    noise = rng.random(n)
    return y, good, noise


def _regression(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 3 * x + rng.normal(0, 0.5, size=n)
    return y, 3 * x, np.full(n, y.mean())


def test_metric_names_for_tasks() -> None:
    assert metric_names_for("classification") == {
        "roc_auc",
        "average_precision",
        "log_loss",
        "brier",
        "accuracy",
        "balanced_accuracy",
        "f1",
        "macro_f1",
        "weighted_f1",
        "precision",
        "recall",
    }
    assert metric_names_for("regression") == {"rmse", "mae", "r2", "poisson_deviance"}
    assert metric_names_for("forecasting") == {"mase", "mae", "rmse", "smape", "mape"}


def test_get_metric_directions_and_kinds() -> None:
    assert get_metric("roc_auc").greater_is_better and get_metric("roc_auc").kind == "score"
    assert not get_metric("log_loss").greater_is_better
    assert get_metric("f1").kind == "label"
    assert not get_metric("rmse").greater_is_better and get_metric("rmse").kind == "value"
    assert get_metric("r2").greater_is_better
    with pytest.raises(KeyError, match="unknown metric 'auc'"):
        get_metric("auc")


def test_score_values_on_hand_computed_cases() -> None:
    y = np.array([0, 0, 1, 1])
    assert score(get_metric("roc_auc"), y, np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert score(get_metric("accuracy"), y, np.array([0, 1, 1, 1])) == 0.75
    assert score(get_metric("brier"), y, np.array([0.0, 0.0, 1.0, 0.5])) == pytest.approx(0.0625)
    assert score(get_metric("rmse"), np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 1.0
    assert score(get_metric("mae"), np.array([1.0, 4.0]), np.array([2.0, 2.0])) == 1.5


def test_log_loss_is_finite_for_certain_wrong_predictions() -> None:
    value = score(get_metric("log_loss"), np.array([0, 1]), np.array([1.0, 0.0]))
    assert math.isfinite(value) and value > 30


def test_poisson_deviance_accepts_zero_predictions() -> None:
    value = score(get_metric("poisson_deviance"), np.array([0.0, 2.0]), np.array([0.0, 2.0]))
    assert math.isfinite(value)


def test_bootstrap_ci_contains_point_estimate() -> None:
    y, good, _ = _classification(200)
    for name, pred in (("roc_auc", good), ("log_loss", good), ("f1", (good >= 0.5).astype(int))):
        est = bootstrap_ci(get_metric(name), y, pred, samples=200, seed=1)
        assert est.value == pytest.approx(score(get_metric(name), y, pred))
        assert est.lower < est.value < est.upper, (name, est)


def test_bootstrap_ci_narrows_with_more_rows() -> None:
    metric = get_metric("roc_auc")
    y_small, p_small, _ = _classification(60, seed=2)
    y_large, p_large, _ = _classification(600, seed=2)
    small = bootstrap_ci(metric, y_small, p_small, samples=200)
    large = bootstrap_ci(metric, y_large, p_large, samples=200)
    assert (large.upper - large.lower) < 0.6 * (small.upper - small.lower)


def test_bootstrap_ci_narrows_with_lower_confidence() -> None:
    y, p, _ = _classification(150)
    wide = bootstrap_ci(get_metric("roc_auc"), y, p, samples=200, confidence=0.99)
    narrow = bootstrap_ci(get_metric("roc_auc"), y, p, samples=200, confidence=0.8)
    assert narrow.lower > wide.lower and narrow.upper < wide.upper


def test_bootstrap_ci_is_deterministic_for_a_seed() -> None:
    y, p, _ = _classification(100)
    metric = get_metric("brier")
    assert bootstrap_ci(metric, y, p, 200, seed=3) == bootstrap_ci(metric, y, p, 200, seed=3)
    assert bootstrap_ci(metric, y, p, 200, seed=3) != bootstrap_ci(metric, y, p, 200, seed=4)


def test_bootstrap_ci_skips_single_class_resamples() -> None:
    y = np.array([0] * 9 + [1])  # many resamples hold no positive
    p = np.linspace(0.1, 0.9, 10)
    est = bootstrap_ci(get_metric("roc_auc"), y, p, samples=200)
    assert est.value == 1.0
    assert math.isfinite(est.lower) and math.isfinite(est.upper)


def test_paired_improvement_positive_for_clearly_better_classifier() -> None:
    y, good, noise = _classification(300)
    est = paired_bootstrap_improvement(get_metric("roc_auc"), y, good, noise, samples=200)
    auc = get_metric("roc_auc")
    assert est.value == pytest.approx(score(auc, y, good) - score(auc, y, noise))
    assert est.value > 0.2
    assert est.lower > 0


def test_paired_improvement_is_oriented_for_lower_is_better_metrics() -> None:
    y, better, worse = _regression(200)
    rmse = get_metric("rmse")
    est = paired_bootstrap_improvement(rmse, y, better, worse, samples=200)
    assert est.value == pytest.approx(score(rmse, y, worse) - score(rmse, y, better))
    assert est.value > 0 and est.lower > 0
    reverse = paired_bootstrap_improvement(rmse, y, worse, better, samples=200)
    assert reverse.value == pytest.approx(-est.value)
    assert reverse.upper < 0


def test_paired_improvement_of_identical_predictions_is_zero() -> None:
    y, good, _ = _classification(100)
    est = paired_bootstrap_improvement(get_metric("roc_auc"), y, good, good.copy(), samples=200)
    assert est == Estimate(0.0, 0.0, 0.0)


def test_paired_improvement_ci_includes_zero_for_equivalent_predictors() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=200)
    est = paired_bootstrap_improvement(
        get_metric("roc_auc"), y, rng.random(200), rng.random(200), samples=200
    )
    assert est.lower < 0 < est.upper


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("roc_auc", "classification"),
        ("log_loss", "classification"),
        ("brier", "classification"),
        ("rmse", "regression"),
        ("mae", "regression"),
        ("accuracy", "labels"),
        ("precision", "labels"),
        ("recall", "labels"),
        ("f1", "labels"),
        ("balanced_accuracy", "labels"),
    ],
)
def test_vectorised_resamples_equal_scikit_learn_on_each_resample(name: str, data: str) -> None:
    """The array shortcut for the bootstrap gives scikit-learn's value on every resample."""
    from ml_assets.lib.metrics import _resample_indices, _resampled

    y, good, _ = _regression(60) if data == "regression" else _classification(60)
    if data == "labels":  # hard labels; on 8 rows some resamples predict or hold one class
        good = (good >= 0.5).astype(np.int8)
        y[:8], good[:8] = [0, 0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0, 0, 1]
    if data == "classification":
        good = np.round(good, 1)  # ties in the scores, as a coarse model gives
        y[:8] = [0, 0, 0, 0, 0, 0, 1, 1]  # resamples of these 8 rows may hold one class
    metric = get_metric(name)
    indices = _resample_indices(8, 300, seed=1)  # 8 rows: single-class resamples happen
    fast = _resampled(metric, y[:8], good[:8], indices)
    # What the per-resample loop gives: scikit-learn's value, or nothing when a score metric
    # sees a single class.
    slow = [
        score(metric, y[:8][idx], good[:8][idx])
        if len(set(y[:8][idx])) > 1 or metric.kind != "score"
        else np.nan
        for idx in indices
    ]
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)
    if data == "classification":
        assert np.isnan(fast).any() and not np.isnan(fast).all()
    full = _resample_indices(60, 200, seed=2)
    slow = [score(metric, y[idx], good[idx]) for idx in full]
    np.testing.assert_allclose(_resampled(metric, y, good, full), slow, rtol=1e-10, atol=1e-12)


def test_relative_improvement_sign() -> None:
    auc, rmse = get_metric("roc_auc"), get_metric("rmse")
    assert relative_improvement(auc, 0.75, 0.5) == pytest.approx(0.5)
    assert relative_improvement(auc, 0.45, 0.5) == pytest.approx(-0.1)
    assert relative_improvement(rmse, 8.0, 10.0) == pytest.approx(0.2)
    assert relative_improvement(rmse, 12.0, 10.0) == pytest.approx(-0.2)
    assert relative_improvement(get_metric("r2"), 0.3, -0.6) == pytest.approx(1.5)


def test_relative_improvement_against_zero_reference() -> None:
    assert relative_improvement(get_metric("r2"), 0.2, 0.0) == math.inf
    assert relative_improvement(get_metric("r2"), -0.2, 0.0) == 0.0
    assert relative_improvement(get_metric("mae"), 0.5, 0.0) == 0.0


def test_estimate_fmt() -> None:
    assert Estimate(0.12345, 0.1, 0.2).fmt() == "0.1235 [0.1000, 0.2000]"
    assert Estimate(1.0, 0.5, 1.5).fmt(1) == "1.0 [0.5, 1.5]"
