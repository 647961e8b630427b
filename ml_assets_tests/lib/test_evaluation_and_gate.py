"""evaluation.py and gate.py: test-split metrics with CIs, model selection, promotion gate."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from ml_assets.lib.data import fingerprint
from ml_assets.lib.evaluation import (
    Evaluation,
    calibration_table,
    evaluate,
    expected_calibration_error,
    residual_summary,
    select_best,
    tracking_metrics,
)
from ml_assets.lib.gate import (
    Criterion,
    champion_not_comparable,
    decide,
    same_training_as_champion,
)
from ml_assets.lib.metrics import Estimate
from ml_assets.lib.models import ConstantModel
from ml_assets.lib.spec import Bound, MLSpec, SuccessCriteria
from ml_assets_tests.lib.conftest import ColumnModel, Fitted, spec_from

GATE_SPEC = spec_from(
    {
        "metrics": {"primary": "roc_auc", "secondary": ["brier"]},
        "evaluation": {"segment_columns": ["region"]},
    }
)


def _test_frame(n: int = 200, seed: int = 11) -> pl.DataFrame:
    """Labels plus three score columns: informative, very informative and pure noise."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.int64)
    good = np.clip(0.3 + 0.3 * y + rng.normal(0, 0.15, n), 0.01, 0.99)
    better = np.clip(0.2 + 0.6 * y + rng.normal(0, 0.1, n), 0.01, 0.99)
    return pl.DataFrame(
        {
            "y": y,
            "good": good,
            "better": better,
            "noise": rng.random(n),
            "region": rng.choice(["north", "south"], n),
        }
    )


def _column_model(column: str, role: str = "candidate") -> ColumnModel:
    return ColumnModel(
        f"{column}_model", "test", role, "classification", [column], 1, column=column
    )


def _baselines(share: float) -> list[ConstantModel]:
    common = {"role": "baseline", "task": "classification", "features": [], "positive": 1}
    return [
        ConstantModel("prior", "constant", value=share, **common),
        ConstantModel("majority", "constant", value=0.0, **common),
    ]


def _evaluate(candidate: str, champion: str | None = None, spec: MLSpec = GATE_SPEC) -> Evaluation:
    test = _test_frame()
    return evaluate(
        spec,
        test,
        _column_model(candidate),
        _baselines(float(test["y"].mean())),
        "prior",
        _column_model(champion, "champion") if champion else None,
    )


@pytest.fixture(scope="module")
def good_eval() -> Evaluation:
    return _evaluate("good")


@pytest.fixture(scope="module")
def noise_eval() -> Evaluation:
    return _evaluate("noise")


@pytest.fixture(scope="module")
def champion_eval() -> Evaluation:
    return _evaluate("good", champion="better")


PASSING = SuccessCriteria(thresholds={"roc_auc": Bound(min=0.7)}, min_relative_improvement=0.1)


def _failed(decision) -> list[str]:
    return [c.name for c in decision.criteria if not c.passed]


# --- evaluate -----------------------------------------------------------------------------


def test_evaluate_real_glm_gives_cis_for_all_metrics(
    trained_classification: Fitted, classification_evaluation: Evaluation
) -> None:
    t, ev = trained_classification, classification_evaluation
    assert ev.spec_name == "toy" and ev.primary == "roc_auc"
    assert ev.test_rows == t.test.height == 80
    assert ev.test_fingerprint == fingerprint(t.test)
    assert not any(k.startswith("champion") for k in tracking_metrics(ev))  # none compared
    np.testing.assert_array_equal(ev.y_true, t.test["y"].to_numpy())
    assert ev.candidate.name == "glm_binomial" and ev.candidate.role == "candidate"
    assert [b.name for b in ev.baselines] == ["prior", "majority"]
    for scored in (ev.candidate, *ev.baselines):
        assert list(scored.metrics) == ["roc_auc", "log_loss", "f1"]
        for name, est in scored.metrics.items():
            assert est.lower <= est.value <= est.upper, (scored.name, name, est)
    auc = ev.candidate.metrics["roc_auc"]
    assert auc.value > 0.75 and auc.lower < auc.value < auc.upper
    assert ev.baseline.metrics["roc_auc"].value == 0.5
    assert ev.vs_baseline.value == pytest.approx(auc.value - 0.5)
    assert ev.vs_baseline.lower > 0
    assert ev.champion is None and ev.vs_champion is None


def test_evaluate_diagnostics_for_classification(classification_evaluation: Evaluation) -> None:
    ev = classification_evaluation
    assert ev.calibration is not None and ev.calibration["rows"].sum() == ev.test_rows
    assert 0 <= expected_calibration_error(ev.calibration) < 0.3
    classes = ev.per_class
    assert classes is not None and classes["class"].to_list() == ["negative", "positive"]
    assert classes["rows"].to_list() == [
        int((ev.y_true == 0).sum()),
        int((ev.y_true == 1).sum()),
    ]
    assert ev.residuals is None
    assert ev.importance is not None and "x1" in ev.importance["feature"].to_list()
    table = ev.summary_table()
    assert table["model"].to_list() == ["glm_binomial", "prior", "majority"]
    assert table.columns == ["model", "role", "roc_auc", "log_loss", "f1"]
    assert table["roc_auc"][0] == ev.candidate.metrics["roc_auc"].fmt()


def test_evaluate_regression(regression_evaluation: Evaluation) -> None:
    ev = regression_evaluation
    assert list(ev.candidate.metrics) == ["rmse", "mae", "poisson_deviance"]
    assert ev.candidate.labels is None
    assert ev.calibration is None
    assert ev.residuals is not None and set(ev.residuals) == {"mean", "std", "p05", "median", "p95"}
    assert ev.residuals["p05"] <= ev.residuals["median"] <= ev.residuals["p95"]
    quartiles = ev.per_group.filter(pl.col("group") == "predicted_quartile")
    assert quartiles["value"].to_list() == ["1", "2", "3", "4"]
    assert quartiles["rows"].sum() == ev.test_rows
    assert "candidate_rmse" in ev.per_group.columns and "baseline_rmse" in ev.per_group.columns
    assert ev.per_class is None
    # Every segment has its interval, and nothing is left empty.
    assert (ev.per_group["candidate_rmse_lower"] <= ev.per_group["candidate_rmse"]).all()
    assert (ev.per_group["candidate_rmse"] <= ev.per_group["candidate_rmse_upper"]).all()
    assert ev.per_group.null_count().sum_horizontal().item() == 0
    # rmse is lower-is-better: a positive paired improvement means the candidate is better
    cand, base = ev.candidate.metrics["rmse"].value, ev.baseline.metrics["rmse"].value
    assert cand < base
    assert ev.vs_baseline.value == pytest.approx(base - cand)


def test_evaluate_segments_and_labels(good_eval: Evaluation) -> None:
    segments = good_eval.per_group.filter(pl.col("group") == "region")
    assert segments["value"].to_list() == ["north", "south"]
    assert segments["rows"].sum() == 200
    assert (segments["candidate_roc_auc"] > 0.8).all()
    assert (segments["baseline_roc_auc"] == 0.5).all()
    assert (segments["candidate_roc_auc_lower"] < segments["candidate_roc_auc"]).all()
    assert (segments["improvement_lower"] > 0).all() and (segments["note"] == "").all()
    labels = good_eval.candidate.labels
    assert labels is not None
    np.testing.assert_array_equal(labels, (good_eval.candidate.scores >= 0.5).astype(np.int8))


def test_evaluate_with_champion(champion_eval: Evaluation) -> None:
    assert champion_eval.champion is not None
    assert champion_eval.champion.role == "champion"
    assert champion_eval.champion.name == "better_model"
    diff = champion_eval.vs_champion
    assert diff is not None
    cand = champion_eval.candidate.metrics["roc_auc"].value
    champ = champion_eval.champion.metrics["roc_auc"].value
    assert diff.value == pytest.approx(cand - champ)
    assert diff.value < 0
    logged = tracking_metrics(champion_eval)
    assert logged["champion_test_roc_auc"] == champ
    assert logged["improvement_vs_champion_roc_auc"] == diff.value
    assert logged["improvement_vs_champion_roc_auc_ci_lower"] <= diff.value
    assert diff.value <= logged["improvement_vs_champion_roc_auc_ci_upper"]
    assert champion_eval.summary_table()["role"].to_list() == [
        "candidate",
        "baseline",
        "baseline",
        "champion",
    ]


def test_select_best_by_primary_then_later_metrics() -> None:
    order = ["roc_auc", "log_loss", "f1"]
    assert (
        select_best(
            {
                "glm": {"roc_auc": 0.80, "log_loss": 0.60, "f1": 0.5},
                "lightgbm": {"roc_auc": 0.81, "log_loss": 0.90, "f1": 0.1},
            },
            order,
        )
        == "lightgbm"
    )
    # tie on the primary: the lower (better) log loss wins
    assert (
        select_best(
            {
                "glm": {"roc_auc": 0.80, "log_loss": 0.50, "f1": 0.1},
                "lightgbm": {"roc_auc": 0.80, "log_loss": 0.55, "f1": 0.9},
            },
            order,
        )
        == "glm"
    )
    # tie on the first two: f1 decides
    assert (
        select_best(
            {
                "glm": {"roc_auc": 0.80, "log_loss": 0.50, "f1": 0.1},
                "lightgbm": {"roc_auc": 0.80, "log_loss": 0.50, "f1": 0.9},
            },
            order,
        )
        == "lightgbm"
    )


def test_select_best_lower_is_better_primary() -> None:
    metrics = {"glm": {"rmse": 2.0, "r2": 0.1}, "lightgbm": {"rmse": 1.5, "r2": 0.0}}
    assert select_best(metrics, ["rmse", "r2"]) == "lightgbm"


def test_calibration_table_and_ece() -> None:
    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0, 0, 1, 1])
    table = calibration_table(y, p, bins=2)
    assert table["rows"].to_list() == [2, 2]
    assert table["observed_rate"].to_list() == [0.0, 1.0]
    assert expected_calibration_error(table) == pytest.approx(0.1)
    constant = calibration_table(y, np.full(4, 0.5), bins=10)
    assert constant["rows"].to_list() == [4]
    assert expected_calibration_error(constant) == pytest.approx(0.0)


def test_residual_summary() -> None:
    summary = residual_summary(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 1.0, 1.0, 1.0]))
    assert summary["mean"] == 1.5
    assert summary["median"] == 1.5
    assert summary["std"] == pytest.approx(np.std([0, 1, 2, 3]))


# --- decide -------------------------------------------------------------------------------


def test_decide_promotes_when_every_criterion_passes(good_eval: Evaluation) -> None:
    decision = decide(good_eval, PASSING)
    assert decision.promote, decision.reasons
    assert decision.reasons == []
    assert [c.name for c in decision.criteria] == [
        "threshold_roc_auc",
        "min_relative_improvement",
        "beats_baseline",
    ]


def test_decide_promotes_the_real_glm(
    trained_classification: Fitted, classification_evaluation: Evaluation
) -> None:
    decision = decide(classification_evaluation, trained_classification.spec.success_criteria)
    assert decision.promote, decision.reasons


def test_decide_refuses_when_paired_ci_includes_zero(noise_eval: Evaluation) -> None:
    assert noise_eval.vs_baseline.lower <= 0 <= noise_eval.vs_baseline.upper
    decision = decide(noise_eval, SuccessCriteria())
    assert not decision.promote
    assert "beats_baseline" in _failed(decision)
    reason = next(r for r in decision.reasons if r.startswith("beats_baseline"))
    assert "its CI must be above 0" in reason
    assert noise_eval.vs_baseline.fmt() in reason


def test_decide_refuses_on_ci_touching_zero_alone(good_eval: Evaluation) -> None:
    weak = dataclasses.replace(good_eval, vs_baseline=Estimate(0.05, -0.001, 0.1))
    decision = decide(weak, PASSING)
    assert not decision.promote
    assert _failed(decision) == ["beats_baseline"]


def test_decide_refuses_when_a_threshold_fails(good_eval: Evaluation) -> None:
    criteria = SuccessCriteria(thresholds={"roc_auc": Bound(min=0.999)})
    decision = decide(good_eval, criteria)
    assert not decision.promote
    assert _failed(decision) == ["threshold_roc_auc"]
    value = good_eval.candidate.metrics["roc_auc"].value
    assert decision.reasons == [f"threshold_roc_auc: test roc_auc {value:.4f}, required >= 0.999"]


def test_decide_checks_max_bounds_for_lower_is_better_metrics(good_eval: Evaluation) -> None:
    brier = good_eval.candidate.metrics["brier"].value
    ok = decide(good_eval, SuccessCriteria(thresholds={"brier": Bound(max=brier + 0.01)}))
    bad = decide(good_eval, SuccessCriteria(thresholds={"brier": Bound(min=0.0, max=brier / 2)}))
    assert ok.promote
    assert _failed(bad) == ["threshold_brier"]
    assert "required >= 0.0 and <= " in bad.reasons[0]


def test_decide_refuses_when_relative_improvement_is_too_small(good_eval: Evaluation) -> None:
    decision = decide(good_eval, SuccessCriteria(min_relative_improvement=5.0))
    assert not decision.promote
    assert _failed(decision) == ["min_relative_improvement"]
    assert "required >= 500.00%" in decision.reasons[0]
    assert "vs best baseline 'prior'" in decision.reasons[0]


def test_decide_refuses_when_worse_than_champion(champion_eval: Evaluation) -> None:
    decision = decide(champion_eval, PASSING)
    assert not decision.promote
    assert _failed(decision) == ["not_worse_than_champion"]
    assert "current champion 'better_model'" in decision.reasons[0]


def test_decide_refuses_a_candidate_that_repeats_the_champion(good_eval: Evaluation) -> None:
    same = _evaluate("good", champion="good")
    assert same.vs_champion == Estimate(0.0, 0.0, 0.0)
    decision = decide(same, PASSING)
    assert not decision.promote and decision.repeats_champion
    assert _failed(decision) == ["differs_from_champion"]  # not worse, but nothing new either
    assert "are identical to those of the current champion" in decision.reasons[0]


def test_same_data_spec_and_code_as_the_champion_is_a_repeat() -> None:
    tags = {"data_fingerprint": "abc", "spec_digest": "s1", "code_version": "0.1+x"}
    repeat = same_training_as_champion("4", tags, dict(tags))
    assert repeat is not None and not repeat.passed
    assert repeat.name == "differs_from_champion"
    assert "same data (abc), spec and code as the current champion v4" in repeat.detail
    for changed in ("data_fingerprint", "spec_digest", "code_version"):
        assert same_training_as_champion("4", tags, {**tags, changed: "other"}) is None
    assert same_training_as_champion("4", {}, {}) is None  # an old champion without lineage tags


def test_decide_refuses_on_an_extra_failing_criterion(good_eval: Evaluation) -> None:
    extra = (Criterion("data_drift", False, "age drifted"), Criterion("fresh", True, "ok"))
    decision = decide(good_eval, PASSING, extra)
    assert not decision.promote
    assert decision.reasons == ["data_drift: age drifted"]
    assert [c.name for c in decision.criteria][-2:] == ["data_drift", "fresh"]


def test_champion_not_comparable_blocks_promotion(good_eval: Evaluation) -> None:
    criterion = champion_not_comparable("3", "column 'x9' missing")
    assert criterion.name == "champion_comparable" and not criterion.passed
    assert "v3" in criterion.detail and "column 'x9' missing" in criterion.detail
    decision = decide(good_eval, PASSING, (criterion,))
    assert not decision.promote
    assert _failed(decision) == ["champion_comparable"]


def test_gate_markdown(good_eval: Evaluation) -> None:
    decision = decide(good_eval, SuccessCriteria(min_relative_improvement=5.0))
    lines = decision.markdown().splitlines()
    assert lines[:2] == ["| criterion | passed | detail |", "|---|---|---|"]
    assert lines[2].startswith("| min_relative_improvement | **NO** | ")
    assert lines[3].startswith("| beats_baseline | yes | ")


def test_threshold_on_a_metric_not_listed_under_metrics() -> None:
    """A spec may bound a metric it does not list as primary/secondary; the gate must apply it.

    (Rejecting such a spec up front would also be a correct fix.)
    """
    overrides = {
        "metrics": {"primary": "roc_auc", "secondary": ["brier"]},
        "success_criteria": {"thresholds": {"accuracy": {"min": 0.5}}},
    }
    try:
        spec = spec_from(overrides)
    except ValueError as exc:
        assert "accuracy" in str(exc)
        return
    ev = _evaluate("good", spec=spec)
    decision = decide(ev, spec.success_criteria)
    criterion = next(c for c in decision.criteria if c.name == "threshold_accuracy")
    assert criterion.passed, criterion.detail


def test_saw_period_compares_dates_datetimes_and_numbers() -> None:
    import datetime as dt

    from ml_assets.lib.gate import champion_saw_test_period, saw_period

    assert saw_period(str(dt.date(2026, 1, 21)), dt.date(2026, 1, 19))
    assert saw_period(str(dt.date(2026, 1, 21)), dt.date(2026, 1, 21))
    assert not saw_period(str(dt.date(2026, 1, 21)), dt.date(2026, 1, 22))
    assert not saw_period(str(dt.datetime(2026, 1, 21, 23)), dt.datetime(2026, 1, 22, 0))
    assert saw_period("100", 99) and not saw_period("100", 101)
    assert not saw_period("9", 10)  # as numbers, not as text
    reason = champion_saw_test_period("3", "2026-01-27", dt.date(2026, 1, 19))
    assert not reason.passed and "v3 was trained on data up to 2026-01-27" in reason.detail
