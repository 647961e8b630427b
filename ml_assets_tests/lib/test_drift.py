"""PSI and drift tests on samples with and without a shift."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ml_assets.lib.drift import (
    PredictionDrift,
    drift_test,
    feature_drift,
    prediction_drift,
    psi_categorical,
    psi_numeric,
)


def _scores(psi: float) -> PredictionDrift:
    return PredictionDrift(psi, "score", np.zeros(1), np.zeros(1))


def test_psi_numeric_near_zero_for_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5000)
    assert psi_numeric(ref, rng.normal(size=5000)) < 0.02
    assert psi_numeric(ref, rng.normal(1.0, 1.0, 5000)) > 0.5


def test_psi_of_few_distinct_values_counts_each_value() -> None:
    """A 0/1 flag or a constant has one or two quantile edges: binned by value instead, a
    shift in the flag's share and a value the reference never took both show."""
    rng = np.random.default_rng(0)
    flag = (rng.random(5000) < 0.5).astype(float)
    assert psi_numeric(flag, (rng.random(5000) < 0.5).astype(float)) < 0.01
    assert psi_numeric(flag, (rng.random(5000) < 0.9).astype(float)) > 0.5
    # by hand: shares (0.5, 0.5) against (0.1, 0.9)
    by_hand = (0.1 - 0.5) * np.log(0.1 / 0.5) + (0.9 - 0.5) * np.log(0.9 / 0.5)
    assert psi_numeric(np.array([0.0, 1.0] * 50), np.array([0.0] + [1.0] * 9)) == pytest.approx(
        by_hand
    )
    constant = np.full(1000, 3.0)
    assert psi_numeric(constant, constant) == pytest.approx(0.0)
    assert psi_numeric(constant, np.full(100, 4.0)) > 1.0  # a value it never took
    counts = rng.poisson(0.8, 5000).astype(float)
    assert psi_numeric(counts, rng.poisson(0.8, 2000).astype(float)) < 0.02
    assert psi_numeric(counts, rng.poisson(1.4, 2000).astype(float)) > 0.2


def test_psi_ignores_nulls_and_handles_empty() -> None:
    ref = np.array([1.0, 2.0, np.nan, 3.0, 4.0])
    assert psi_numeric(ref, ref) == pytest.approx(0.0)
    assert np.isnan(psi_numeric(ref, np.array([np.nan])))


def test_psi_categorical_by_hand() -> None:
    ref = pl.Series(["a"] * 50 + ["b"] * 50)
    cur = pl.Series(["a"] * 80 + ["b"] * 20)
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert psi_categorical(ref, cur) == pytest.approx(expected)


def test_drift_tests() -> None:
    rng = np.random.default_rng(1)
    same = drift_test(pl.Series(rng.normal(size=800)), pl.Series(rng.normal(size=800)), False)
    moved = drift_test(pl.Series(rng.normal(size=800)), pl.Series(rng.normal(0.5, 1, 800)), False)
    assert same[0] == "ks" and same[1] > 0.01 and moved[1] < 1e-6
    cat = drift_test(
        pl.Series(["a"] * 300 + ["b"] * 300), pl.Series(["a"] * 450 + ["b"] * 150), True
    )
    assert cat[0] == "chi2" and cat[1] < 1e-6


def test_feature_drift_ranks_and_flags() -> None:
    rng = np.random.default_rng(2)
    ref = pl.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["u", "v"], 2000)})
    cur = pl.DataFrame({"x": rng.normal(2, 1, 2000), "c": rng.choice(["u", "v"], 2000)})
    cur = cur.with_columns(
        pl.when(pl.int_range(pl.len()) < 200).then(None).otherwise("c").alias("c")
    )
    table = feature_drift(ref, cur, ["x", "c"], ["c"])
    assert table["feature"].to_list() == ["x", "c"]
    assert table["drifted"].to_list() == [True, False]
    assert table.filter(pl.col("feature") == "c")["missing_change"][0] == pytest.approx(0.1)


def test_verdict_reasons() -> None:
    from ml_assets.lib.drift import verdict
    from ml_assets.lib.metrics import Estimate

    table = pl.DataFrame(
        {"feature": ["a", "b", "c"], "psi": [0.9, 0.3, 0.01], "drifted": [True, True, False]}
    )
    champion = (0.70, 0.80)
    bad_day = Estimate(0.61, 0.55, 0.67)
    fired = verdict(
        table, _scores(0.4), bad_day, champion, True, max_drifted_share=0.5, max_psi=0.5
    )
    assert fired.retrain and len(fired.reasons) == 3
    assert (
        "2 of 3 features drifted" in fired.reasons[0] and "max PSI 0.900 on 'a'" in fired.reasons[1]
    )
    assert "realized 0.6100 [0.5500, 0.6700]" in fired.reasons[2]
    calm = verdict(
        table,
        _scores(0.0),
        Estimate(0.75, 0.7, 0.8),
        champion,
        True,
        max_drifted_share=0.9,
        max_psi=1.0,
    )
    assert not calm.retrain and calm.reasons == []
    # A noisy day whose point estimate dips below the CI but whose own CI overlaps it is no
    # evidence of degradation.
    noisy = verdict(
        table,
        _scores(0.0),
        Estimate(0.66, 0.58, 0.74),
        champion,
        True,
        max_drifted_share=0.9,
        max_psi=1.0,
    )
    assert not noisy.retrain
    lower_better = verdict(
        table,
        _scores(0.0),
        Estimate(5.0, 4.6, 5.4),
        (3.5, 4.0),
        False,
        max_drifted_share=0.9,
        max_psi=1.0,
    )
    assert lower_better.retrain and "outside the champion's test CI" in lower_better.reasons[0]
    unlabelled = verdict(
        table, _scores(0.0), None, champion, True, max_drifted_share=0.9, max_psi=1.0
    )
    assert not unlabelled.retrain and unlabelled.realized is None


def test_a_recorded_verdict_reads_back_as_the_same_retrain_signal() -> None:
    """The drift report writes ``summary`` into its metadata; the sensor reads it back."""
    from ml_assets.lib.drift import RetrainSignal, verdict

    table = pl.DataFrame({"feature": ["a", "b"], "psi": [0.9, 0.01], "drifted": [True, False]})
    fired = verdict(table, _scores(0.2), None, None, True, max_drifted_share=0.4, max_psi=0.5)
    calm = verdict(table, _scores(0.0), None, None, True, max_drifted_share=0.9, max_psi=0.95)
    signal = RetrainSignal.from_metadata(fired.summary("7"))
    assert signal == RetrainSignal(
        retrain=True,
        reasons="; ".join(fired.reasons),
        drifted_features="a",
        max_psi=pytest.approx(0.9),
        drifted_share=pytest.approx(0.5),
        model_version="7",
    )
    assert not RetrainSignal.from_metadata(calm.summary("7")).retrain
    assert RetrainSignal.from_metadata(calm.summary("7")).reasons == "within thresholds"


def test_prediction_drift_of_k_classes_follows_the_class_mix() -> None:
    """Two classes trading places move no one's confidence, so the top probability does not
    drift; the probability of a class whose share changed does, and is the one reported."""
    rng = np.random.default_rng(0)
    sure = rng.uniform(0.7, 0.9, 4000)
    rest = (1 - sure) / 2

    def probabilities(first_share: float) -> np.ndarray:
        first = rng.random(4000) < first_share  # rows whose most probable class is "a"
        a = np.where(first, sure, rest)
        b = np.where(first, rest, sure)
        return np.column_stack([a, b, rest])

    reference, day = probabilities(0.5), probabilities(0.9)
    top = psi_numeric(reference.max(axis=1), day.max(axis=1))
    found = prediction_drift(reference, day, ["a", "b", "c"])
    assert top < 0.05 < 0.5 < found.psi
    assert found.of in ("P(a)", "P(b)")
    column = {"P(a)": 0, "P(b)": 1}[found.of]
    np.testing.assert_array_equal(found.current, day[:, column])
    assert found.psi == pytest.approx(psi_numeric(reference[:, column], day[:, column]))
    calm = prediction_drift(reference, probabilities(0.5), ["a", "b", "c"])
    assert calm.psi < 0.05
    unnamed = prediction_drift(reference, day)  # no class names: the column's index
    assert unnamed.of in ("P(0)", "P(1)") and unnamed.psi == pytest.approx(found.psi)
    scores = rng.random(1000)
    one = prediction_drift(scores, scores + 0.5)
    assert one.of == "score" and one.psi == pytest.approx(psi_numeric(scores, scores + 0.5))


def test_prediction_drift_refuses_scores_of_different_shapes() -> None:
    three = np.full((10, 3), 1 / 3)
    with pytest.raises(ValueError, match="the reference has 3 scores per row, the day one"):
        prediction_drift(three, np.full(10, 0.5))
    with pytest.raises(ValueError, match="the reference has 3 scores per row, the day 2"):
        prediction_drift(three, np.full((10, 2), 0.5))
    with pytest.raises(ValueError, match=r"3 class probabilities for 2 classes \['a', 'b'\]"):
        prediction_drift(three, three, ["a", "b"])
    empty = prediction_drift(three, np.empty((0, 3)), ["a", "b", "c"])
    assert np.isnan(empty.psi) and empty.of == "no scores"
