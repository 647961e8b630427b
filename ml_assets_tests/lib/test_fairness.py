"""Fairness across groups: per-group rates with intervals, disparities, the report section,
the gate criterion when the spec blocks on it, and group columns kept out of the features."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ml_assets.lib import fairness
from ml_assets.lib.data import build_features, feature_columns
from ml_assets.lib.evaluation import Evaluation, evaluate
from ml_assets.lib.gate import decide
from ml_assets.lib.models import ConstantModel
from ml_assets.lib.report import render_html
from ml_assets_tests.lib.conftest import ColumnModel, lineage_for, spec_from

FAIR = {
    "metrics": {"primary": "roc_auc", "secondary": ["f1"]},
    "split": {"cv_folds": 0},
    "evaluation": {"bootstrap_samples": 300},
}


def _people(n: int = 4000, seed: int = 0, lean: float = 0.25) -> pl.DataFrame:
    """A score that is informative, plus ``lean`` more for group 'b' whatever the truth."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], n)
    y = (rng.random(n) < 0.3).astype(int)
    score = np.clip(0.35 * y + 0.6 * rng.random(n) + lean * (group == "b"), 0, 1)
    return pl.DataFrame({"group": group, "y": y, "score": score})


def _evaluate(frame: pl.DataFrame, **fair: object) -> Evaluation:
    spec = spec_from({**FAIR, "fairness": {"columns": ["group"], **fair}})
    common = {"task": "classification", "positive": 1}
    candidate = ColumnModel("leaning", "test", "candidate", features=["score"], **common)
    candidate.threshold = 0.5
    baselines = [
        ConstantModel("prior", "constant", "baseline", features=[], value=0.3, **common),
        ConstantModel("majority", "constant", "baseline", features=[], value=0.0, **common),
    ]
    return evaluate(spec, frame, candidate, baselines, "prior")


def test_rates_per_group_are_the_counts_and_the_intervals_cover_them() -> None:
    frame = _people(lean=0.1)  # every rate strictly between 0 and 1
    ev = _evaluate(frame)
    fair = ev.fairness
    assert fair is not None
    labels = (frame["score"].to_numpy() >= 0.5).astype(int)
    y, group = frame["y"].to_numpy(), frame["group"].to_numpy()
    rates = {}
    for row in fair.groups.iter_rows(named=True):
        mask = group == row["group"]
        expected = {
            "selection_rate": labels[mask].mean(),
            "tpr": labels[mask & (y == 1)].mean(),
            "fpr": labels[mask & (y == 0)].mean(),
        }
        for name, value in expected.items():
            assert row[name] == pytest.approx(value)
            assert row[f"{name}_lower"] < value < row[f"{name}_upper"]
        rates[row["group"]] = expected
    dp = fair.disparities.filter(pl.col("disparity") == "demographic_parity_difference").row(
        0, named=True
    )
    assert dp["value"] == pytest.approx(
        abs(rates["a"]["selection_rate"] - rates["b"]["selection_rate"])
    )
    assert dp["lower"] < dp["value"] < dp["upper"]
    eo = fair.disparities.filter(pl.col("disparity") == "equalized_odds_difference")["value"][0]
    assert eo == pytest.approx(max(abs(rates["a"][r] - rates["b"][r]) for r in ("tpr", "fpr")))


def test_a_group_without_positives_has_no_tpr_and_still_counts_elsewhere() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0])
    labels = np.array([1, 0, 0, 1, 1, 0, 0, 0])
    group = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
    fair = fairness.assess({"g": group}, y, labels, samples=200, min_group_rows=1)
    b = fair.groups.filter(pl.col("group") == "b").row(0, named=True)
    assert np.isnan(b["tpr"]) and b["selection_rate"] == 0.25 and b["fpr"] == 0.25
    dp = fair.disparities.filter(pl.col("disparity") == "demographic_parity_difference")
    assert dp["value"][0] == pytest.approx(0.25)  # a: 2/4, b: 1/4
    eo = fair.disparities.filter(pl.col("disparity") == "equalized_odds_difference")
    assert eo["value"][0] == pytest.approx(1 / 2 - 1 / 4)  # FPR only: TPR of b is undefined


def test_the_gate_refuses_a_model_whose_disparity_exceeds_a_blocking_bound() -> None:
    leaning = _evaluate(_people(lean=0.25), max_disparity=0.1, block=True)
    decision = decide(leaning, spec_from(FAIR).success_criteria)
    criterion = next(c for c in decision.criteria if c.name == "fairness")
    assert not criterion.passed and not decision.promote
    assert "demographic_parity_difference over 'group'" in criterion.detail
    assert "required <= 0.1 (fairness.max_disparity)" in criterion.detail
    fair = _evaluate(_people(lean=0.0), max_disparity=0.1, block=True)
    assert next(
        c for c in decide(fair, spec_from(FAIR).success_criteria).criteria if c.name == "fairness"
    ).passed
    reported = _evaluate(_people(lean=0.25), max_disparity=0.1)  # block: false
    assert all(
        c.name != "fairness" for c in decide(reported, spec_from(FAIR).success_criteria).criteria
    )
    assert reported.fairness is not None and reported.fairness.exceeded().height == 2


def test_the_report_has_the_fairness_tables_and_plot() -> None:
    ev = _evaluate(_people(lean=0.25), max_disparity=0.1)
    spec = spec_from(FAIR)
    page = render_html(ev, decide(ev, spec.success_criteria), lineage_for(spec, ev))
    section = page.split("<h2>Fairness across groups</h2>")[1].split("<h2>")[0]
    assert "2 disparity(ies) exceed the bound 0.1: this is reported, not enforced" in section
    assert "demographic_parity_difference" in section and "selection_rate_lower" in section
    assert section.count("data:image/png;base64,") == 1


def test_a_dropped_fairness_column_reaches_the_test_rows_but_no_model() -> None:
    spec = spec_from({"drop": ["group"], "fairness": {"columns": ["group"]}})
    frame = build_features(spec, _people(50).drop("score").with_columns(x1=pl.lit(1.0)))
    assert "group" in frame.columns
    assert "group" not in feature_columns(spec, frame)
    plain = spec_from({"drop": ["group"]})
    assert "group" not in build_features(plain, _people(50)).columns


def test_fairness_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="'fairness' .* is for classification"):
        spec_from({"fairness": {"columns": ["x1"]}}, task="regression")
    with pytest.raises(ValueError, match="fairness.block needs fairness.max_disparity"):
        spec_from({"fairness": {"columns": ["x1"], "block": True}})


def test_a_tiny_group_is_listed_but_left_out_of_the_disparities() -> None:
    frame = pl.concat([_people(lean=0.0), _people(5, seed=9).with_columns(group=pl.lit("z"))])
    ev = _evaluate(frame, max_disparity=0.1, block=True)
    assert ev.fairness is not None
    z = ev.fairness.groups.filter(pl.col("group") == "z").row(0, named=True)
    assert z["note"].startswith("too few rows for selection_rate")
    assert ev.fairness.exceeded().height == 0  # a and b are alike; z's 5 rows do not count
