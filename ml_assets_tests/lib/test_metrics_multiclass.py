"""Classification metrics on K > 2 classes: a (rows, K) probability matrix and class-index
truth and labels, the same names as for two classes, with bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from ml_assets.lib import intervals
from ml_assets.lib.metrics import bootstrap_ci, get_metric, paired_bootstrap_improvement, score
from ml_assets_tests.lib.conftest import spec_from


def _three_classes(n: int = 900, seed: int = 0, signal: float = 2.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + signal * (y[:, None] == np.arange(3))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, p, p.argmax(axis=1).astype(np.int8)


def test_each_metric_is_the_multiclass_definition() -> None:
    y, p, labels = _three_classes()
    one_hot = (y[:, None] == np.arange(3)).astype(float)
    expected = {
        "log_loss": skm.log_loss(y, p, labels=[0, 1, 2]),
        "roc_auc": skm.roc_auc_score(y, p, multi_class="ovr", average="macro"),
        "average_precision": skm.average_precision_score(one_hot, p, average="macro"),
        "brier": np.mean(np.sum((p - one_hot) ** 2, axis=1)),
        "top_2_accuracy": skm.top_k_accuracy_score(y, p, k=2),
    }
    for name, value in expected.items():
        assert score(get_metric(name), y, p) == pytest.approx(value), name
    by_label = {
        "accuracy": skm.accuracy_score(y, labels),
        "balanced_accuracy": skm.balanced_accuracy_score(y, labels),
        "macro_f1": skm.f1_score(y, labels, average="macro"),
        "weighted_f1": skm.f1_score(y, labels, average="weighted"),
    }
    for name, value in by_label.items():
        assert score(get_metric(name), y, labels) == pytest.approx(value), name


def test_two_classes_keep_their_meaning() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.3).astype(int)
    p = np.clip(0.4 * y + 0.6 * rng.random(500), 0, 1)
    assert score(get_metric("roc_auc"), y, p) == pytest.approx(skm.roc_auc_score(y, p))
    assert score(get_metric("brier"), y, p) == pytest.approx(skm.brier_score_loss(y, p))
    assert score(get_metric("log_loss"), y, p) == pytest.approx(skm.log_loss(y, p))
    labels = (p >= 0.5).astype(int)
    assert score(get_metric("macro_f1"), y, labels) == pytest.approx(
        skm.f1_score(y, labels, average="macro")
    )


@pytest.mark.parametrize("name", ["accuracy", "macro_f1", "roc_auc", "log_loss"])
def test_bootstrap_intervals_of_multiclass_metrics_hold_the_point(name: str) -> None:
    y, p, labels = _three_classes(600, seed=2)
    metric = get_metric(name)
    values = labels if metric.kind == "label" else p
    est = bootstrap_ci(metric, y, values, samples=300, seed=0)
    assert est.lower < est.value < est.upper
    # The accuracy interval is about the binomial one: 2 x 1.96 x sd of a proportion.
    if name == "accuracy":
        sd = np.sqrt(est.value * (1 - est.value) / len(y))
        assert est.upper - est.lower == pytest.approx(2 * 1.96 * sd, rel=0.25)


def test_paired_comparison_and_large_sets_work_on_class_matrices() -> None:
    y, good, _ = _three_classes(900, seed=3, signal=2.5)
    _, weak, _ = _three_classes(900, seed=3, signal=0.5)
    better = paired_bootstrap_improvement(get_metric("log_loss"), y, good, weak, 300)
    assert better.lower > 0
    y, p, labels = _three_classes(30_000, seed=4)
    est = intervals.metric_ci(get_metric("macro_f1"), y, labels, 200, 0.95, 0, 20_000)
    assert est.lower < est.value < est.upper and est.upper - est.lower < 0.03


def test_specs_name_the_multiclass_metrics() -> None:
    spec = spec_from({"metrics": {"primary": "macro_f1", "secondary": ["top_3_accuracy"]}})
    assert spec.primary_metric == "macro_f1" and spec.metrics.secondary == ["top_3_accuracy"]


def test_numpy_definitions_equal_scikit_learn_on_ties_and_missing_classes() -> None:
    """The bootstrap-speed implementations agree with scikit-learn on awkward resamples:
    tied probabilities, a class never predicted, a class predicted but never true."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        n, k = int(rng.integers(5, 40)), int(rng.integers(3, 6))
        y = rng.integers(0, k, n)
        labels = rng.integers(0, k - 1, n)  # class k-1 never predicted
        labels[rng.random(n) < 0.2] = k  # and a class that is never true
        p = np.round(rng.dirichlet(np.ones(k), n), 1) + 1e-3  # ties in every column
        p /= p.sum(axis=1, keepdims=True)
        expected = {
            "accuracy": skm.accuracy_score(y, labels),
            "macro_f1": skm.f1_score(y, labels, average="macro", zero_division=0),
            "weighted_f1": skm.f1_score(y, labels, average="weighted", zero_division=0),
        }
        for name, value in expected.items():
            assert score(get_metric(name), y, labels) == pytest.approx(value), name
        true_labels = labels[labels < k]  # balanced accuracy: predictions among true classes
        assert score(get_metric("balanced_accuracy"), y[labels < k], true_labels) == pytest.approx(
            skm.balanced_accuracy_score(y[labels < k], true_labels)
        )
        assert score(get_metric("log_loss"), y, p) == pytest.approx(
            skm.log_loss(y, p, labels=list(range(k)))
        )
        assert score(get_metric("top_2_accuracy"), y, p) == pytest.approx(
            skm.top_k_accuracy_score(y, p, k=2, labels=list(range(k)))
        )
        if len(np.unique(y)) == k:
            assert score(get_metric("roc_auc"), y, p) == pytest.approx(
                skm.roc_auc_score(y, p, multi_class="ovr", average="macro")
            )
