"""report.py: the self-contained HTML report, the model card and markdown tables."""

from __future__ import annotations

import base64
import re

import polars as pl
import pytest

from ml_assets.lib.evaluation import Evaluation, evaluate
from ml_assets.lib.gate import Criterion, GateDecision, decide
from ml_assets.lib.plots import plots
from ml_assets.lib.report import markdown_table, model_card, render_html, segment_table
from ml_assets.lib.spec import Bound, SuccessCriteria
from ml_assets_tests.lib.conftest import Fitted, lineage_for, spec_from

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def failing_decision(classification_evaluation: Evaluation) -> GateDecision:
    criteria = SuccessCriteria(thresholds={"roc_auc": Bound(min=0.99)})
    return decide(classification_evaluation, criteria, (Criterion("drift", False, "x1 drifted"),))


def _assert_self_contained(page: str) -> None:
    """Nothing is fetched from elsewhere: the only URLs are the links to the runs."""
    assert page.startswith("<!doctype html>") and page.endswith("</html>")
    assert not re.search(r"https?://", re.sub(r'<a href="[^"]*"', "", page))
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert not re.search(r"""src=["'](?!data:)""", page)


def test_classification_report_is_self_contained_with_embedded_plots(
    trained_classification: Fitted, classification_evaluation: Evaluation
) -> None:
    ev = classification_evaluation
    decision = decide(ev, trained_classification.spec.success_criteria)
    links = {"MLflow run": "http://mlflow/#/runs/1", "Dagster run": "http://dagster/runs/2"}
    page = render_html(ev, decision, lineage_for(trained_classification.spec, ev), links)
    _assert_self_contained(page)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4  # ROC/PR, calibration, confusion matrix, importance
    assert all(base64.b64decode(img).startswith(PNG_MAGIC) for img in images)
    assert "<h1>Evaluation report: toy</h1>" in page
    assert re.search(r"<p class='meta'>\d{4}-\d\d-\d\d \d\d:\d\d UTC · candidate", page)
    assert "<div class='verdict good'><b>PROMOTE: glm_binomial passes every criterion" in page
    for name, url in links.items():
        assert f'<a href="{url}" target="_blank" rel="noopener">{name}</a>' in page
    assert ev.candidate.metrics["roc_auc"].fmt() in page
    assert ev.vs_baseline.fmt() in page
    headings = re.findall(r"<h2>([^<]+)</h2>", page)
    assert len(headings) == len(set(headings))  # no section twice
    for heading in ("Promotion gate", "Calibration", "Feature importance", "Lineage"):
        assert heading in headings
    assert "Classes at the decision threshold" in headings
    assert "run-123" in page and trained_classification.spec.digest() in page
    assert "None" not in re.sub(r"<img[^>]*>", "", page)


def test_regression_report_has_residual_plots(
    trained_regression: Fitted, regression_evaluation: Evaluation
) -> None:
    ev = regression_evaluation
    decision = decide(ev, trained_regression.spec.success_criteria)
    page = render_html(ev, decision, lineage_for(trained_regression.spec, ev))
    _assert_self_contained(page)
    assert page.count("data:image/png;base64,") == 3  # residuals, distribution, importance
    headings = re.findall(r"<h2>([^<]+)</h2>", page)
    assert headings.count("Residuals") == 1 and "Residual distribution" not in headings
    assert headings.count("Feature importance") == 1
    assert "Calibration" not in headings and "Segments" in headings
    assert set(plots(ev)) == {"Residuals", "Residual distribution", "Feature importance"}
    table = segment_table(ev.per_group, "rmse")
    assert table.columns[3:6] == [
        "candidate rmse [CI]",
        "best baseline rmse [CI]",
        "improvement [CI]",
    ]
    assert all(
        re.fullmatch(r"-?\d+\.\d{4} \[-?\d+\.\d{4}, -?\d+\.\d{4}\]", c) for c in table.to_series(3)
    )


def test_report_escapes_html_from_data(
    trained_classification: Fitted, classification_evaluation: Evaluation
) -> None:
    decision = GateDecision(False, [Criterion("custom", False, "<b>bad</b> & worse")])
    page = render_html(
        classification_evaluation,
        decision,
        lineage_for(trained_classification.spec, classification_evaluation),
    )
    assert "&lt;b&gt;bad&lt;/b&gt; &amp; worse" in page
    assert "<b>bad</b>" not in page
    assert "<div class='verdict bad'><b>NOT PROMOTED: glm_binomial fails 1 criterion" in page
    assert "<td class='fail'>FAILED</td>" in page


def test_model_card_lists_metrics_and_failed_criteria(
    trained_classification: Fitted,
    classification_evaluation: Evaluation,
    failing_decision: GateDecision,
) -> None:
    ev = classification_evaluation
    lineage = lineage_for(trained_classification.spec, ev)
    card = model_card(ev, failing_decision, lineage, "Predicts y for the toy problem.")
    assert card.startswith("# Model card: toy (glm_binomial)")
    for name, est in ev.candidate.metrics.items():
        assert f"- {name}: {est.fmt()}" in card
    assert f"- best baseline 'prior' roc_auc: {ev.baseline.metrics['roc_auc'].fmt()}" in card
    assert f"- paired improvement over it: {ev.vs_baseline.fmt()}" in card
    assert "NOT promoted. Failed criteria:" in card
    for reason in failing_decision.reasons:
        assert f"- {reason}" in card
    assert "- drift: x1 drifted" in card
    assert "required >= 0.99" in card
    assert "Predicts y for the toy problem." in card
    assert f"spec digest {lineage.spec_digest}, code version 0.1.0+test" in card
    assert "rows: train 240, validation 80, test 80" in card
    assert "## Limitations" in card


def test_model_card_for_promoted_model(
    trained_classification: Fitted, classification_evaluation: Evaluation
) -> None:
    decision = decide(classification_evaluation, trained_classification.spec.success_criteria)
    lineage = lineage_for(trained_classification.spec, classification_evaluation)
    card = model_card(classification_evaluation, decision, lineage, "")
    assert "promoted to champion. Failed criteria:\n- none" in card
    assert "See the spec." in card


def test_report_states_the_configured_confidence_level(
    trained_classification: Fitted,
) -> None:
    """Intervals at 90% confidence must not be described as 95% intervals."""
    t = trained_classification
    spec = spec_from(
        {"metrics": {"secondary": []}, "evaluation": {"confidence": 0.9, "bootstrap_samples": 100}}
    )
    ev = evaluate(spec, t.test, t.glm, t.baselines[:1], "prior")
    decision = decide(ev, spec.success_criteria)
    lineage = lineage_for(spec, ev)
    card = model_card(ev, decision, lineage, "")
    page = render_html(ev, decision, lineage)
    for text in (card, page):
        assert not re.search(r"(?<![\d.])95%", text)
        assert re.search(r"(?<![\d.])90%", text)


def test_markdown_table() -> None:
    frame = pl.DataFrame({"model": ["glm", "prior"], "auc": [0.81234, 0.5], "rows": [10, 10]})
    assert markdown_table(frame) == (
        "| model | auc | rows |\n|---|---|---|\n| glm | 0.8123 | 10 |\n| prior | 0.5000 | 10 |"
    )
    assert markdown_table(pl.DataFrame()) == "(none)"


def test_large_test_split_uses_influence_intervals_and_a_stated_sample(
    trained_classification: Fitted,
) -> None:
    """Above the row limits, intervals are influence-function ones and importance uses a
    seeded sample; the report and the model card say both, with the row counts."""
    t = trained_classification
    spec = spec_from(
        {
            "evaluation": {
                "bootstrap_max_rows": 50,
                "diagnostic_rows": 50,
                "bootstrap_samples": 100,
            }
        }
    )
    ev = evaluate(spec, t.test, t.lightgbm, t.baselines, "prior")
    assert ev.test_rows > 50
    assert ev.diagnostic_sample is not None and len(ev.diagnostic_sample) == 50
    assert ev.diagnostic_sample.tolist() == sorted(set(ev.diagnostic_sample.tolist()))
    again = evaluate(spec, t.test, t.lightgbm, t.baselines, "prior")
    assert again.diagnostic_sample.tolist() == ev.diagnostic_sample.tolist()  # seeded
    expected = t.lightgbm.importance(t.test[ev.diagnostic_sample])
    assert ev.importance is not None and ev.importance.equals(expected)
    decision = decide(ev, spec.success_criteria)
    page = render_html(ev, decision, lineage_for(spec, ev))
    assert "influence-function standard errors" in page
    assert f"seeded sample of 50 of the {ev.test_rows:,} test rows" in page
    card = model_card(ev, decision, lineage_for(spec, ev), "")
    assert "influence-function" in card
    beats = next(c for c in decision.criteria if c.name == "beats_baseline")
    assert "paired normal test with influence-function standard errors" in beats.detail


def test_small_test_split_is_bootstrapped_and_not_sampled(
    trained_classification: Fitted, classification_evaluation: Evaluation
) -> None:
    ev = classification_evaluation
    assert ev.diagnostic_sample is None
    page = render_html(
        ev,
        decide(ev, trained_classification.spec.success_criteria),
        lineage_for(trained_classification.spec, ev),
    )
    assert "percentile bootstrap intervals" in page
    assert "Every part of this report uses every test row." in page


def test_a_segment_without_both_classes_says_why_instead_of_a_blank(
    trained_classification: Fitted,
) -> None:
    t = trained_classification
    test = t.test.with_columns(
        pl.when(pl.col("y") == 1).then(pl.lit("only_positive")).otherwise(pl.lit("mixed"))
    )
    spec = spec_from({"evaluation": {"segment_columns": ["literal"], "bootstrap_samples": 100}})
    ev = evaluate(spec, test, t.glm, t.baselines[:1], "prior")
    table = segment_table(ev.per_group, "roc_auc")
    lonely = table.filter(pl.col("value") == "only_positive")
    assert lonely["candidate roc_auc [CI]"].to_list() == ["n/a"]
    assert lonely["note"].to_list() == ["one class only: roc_auc undefined"]
    page = render_html(ev, decide(ev, spec.success_criteria), lineage_for(spec, ev))
    assert "one class only: roc_auc undefined" in page
    assert "None" not in re.sub(r"<img[^>]*>", "", page)


def test_the_report_shows_the_cross_validation_that_chose_the_candidate(
    trained_regression: Fitted, regression_evaluation: Evaluation
) -> None:
    """trained_regression cross-validates (small data, cv_folds unset): the report lists each
    model's fold scores, mean and spread; without folds the section is absent."""
    import dataclasses

    from ml_assets.lib import cross_validation as cv_lib
    from ml_assets.lib.families import train_tabular
    from ml_assets.lib.metrics import get_metric

    t = trained_regression
    glm = train_tabular(t.spec, "glm", t.data, get_metric("rmse"))  # the family's CV wrapper
    tables = {m.name: (m.role, cv_lib.fold_table(m, t.spec.all_metrics)) for m in (t.lightgbm, glm)}
    table = cv_lib.selection_table("rmse", tables)
    kind = t.lightgbm.params["cv_folds_made"]
    ev = dataclasses.replace(regression_evaluation, selection=table, selection_folds=kind)
    page = render_html(ev, decide(ev, t.spec.success_criteria), lineage_for(t.spec, ev))
    section = page.split("<h2>Model selection: cross-validation</h2>")[1].split("<h2>")[0]
    assert "rmse on each of 5 folds of the train + validation rows (folds random;" in section
    for name in tables:
        assert f"<td>{name}</td>" in section
    fold_scores = tables["lightgbm"][1]["rmse"]
    assert table.filter(pl.col("model") == "lightgbm")["mean"][0] == pytest.approx(
        float(fold_scores.mean()), abs=1e-4
    )
    assert f"<td>{round(float(fold_scores[0]), 4)}</td>" in section
    plain = render_html(
        regression_evaluation,
        decide(regression_evaluation, t.spec.success_criteria),
        lineage_for(t.spec, regression_evaluation),
    )
    assert "Model selection: cross-validation" not in plain
