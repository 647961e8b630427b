"""tracking.py: MLflow runs, registry versions and the champion alias on a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest

from ml_assets.lib.models import validation_metrics
from ml_assets.lib.tracking import CHAMPION_ALIAS, LoggedModel, Tracker
from ml_assets_tests.lib.conftest import Fitted


@pytest.fixture(scope="module")
def logged_glm(tracker: Tracker, trained_classification: Fitted) -> LoggedModel:
    t = trained_classification
    metrics = validation_metrics(t.glm, t.data, ["roc_auc", "log_loss"])
    return tracker.log_model("toy", t.glm, t.validation, metrics, {"spec_digest": "abc123"})


def test_log_model_records_params_metrics_and_tags(
    tracker: Tracker, logged_glm: LoggedModel, trained_classification: Fitted
) -> None:
    t = trained_classification
    run = tracker.client.get_run(logged_glm.run_id)
    assert run.info.experiment_id == logged_glm.experiment_id
    assert run.info.run_name == "toy · glm_binomial · candidate"
    experiment = tracker.client.get_experiment(logged_glm.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # ML view
    expected = validation_metrics(t.glm, t.data, ["roc_auc", "log_loss"])
    assert run.data.metrics == pytest.approx(
        {"validation_roc_auc": expected["roc_auc"], "validation_log_loss": expected["log_loss"]}
    )
    assert run.data.params["family"] == "binomial"
    assert run.data.params["threshold"] == str(t.glm.threshold)
    tags = run.data.tags
    assert (tags["spec_digest"], tags["role"], tags["family"], tags["model_name"]) == (
        "abc123",
        "candidate",
        "statsmodels_glm",
        "glm_binomial",
    )
    experiment = tracker.client.get_experiment(logged_glm.experiment_id)
    assert experiment.name == "toy"
    assert experiment.artifact_location.endswith("/artifacts/toy")
    assert tracker.experiment_id("toy") == logged_glm.experiment_id  # reused, not recreated


def test_logged_model_serves_the_same_predictions(
    tracker: Tracker, logged_glm: LoggedModel, trained_classification: Fitted
) -> None:
    t = trained_classification
    pyfunc = mlflow.pyfunc.load_model(logged_glm.model_uri)
    served = np.asarray(pyfunc.predict(t.test.select(t.glm.features).to_pandas()))
    np.testing.assert_allclose(served, t.glm.predict(t.test))


def test_a_baseline_run_has_params_and_metrics_and_no_model(
    tracker: Tracker, trained_classification: Fitted
) -> None:
    """Baselines are compared, never registered: their run skips the pyfunc artifact (about
    half a second each) and keeps the learned value as a param."""
    t = trained_classification
    prior = next(b for b in t.baselines if b.name == "prior")
    logged = tracker.log_model("toy", prior, t.validation, {"roc_auc": 0.5}, {})
    assert logged.model_uri is None
    run = tracker.client.get_run(logged.run_id)
    assert run.data.tags["role"] == "baseline"
    assert run.data.metrics == {"validation_roc_auc": 0.5}
    assert float(run.data.params["value"]) == pytest.approx(prior.value)  # type: ignore[attr-defined]
    assert tracker.client.list_artifacts(logged.run_id) == []
    with pytest.raises(AssertionError, match="no model to register"):
        tracker.register("toy_baseline", logged, "card", {})


def test_champion_version_is_none_before_any_alias(
    tracker: Tracker, logged_glm: LoggedModel
) -> None:
    assert tracker.champion_version("never_registered") is None
    assert tracker.load_champion("never_registered") is None
    tracker.register("registered_without_alias", logged_glm, "# card", {})
    assert tracker.champion_version("registered_without_alias") is None


def test_register_set_champion_and_load_round_trip(
    tracker: Tracker, logged_glm: LoggedModel, trained_classification: Fitted
) -> None:
    t = trained_classification
    card = "# Model card: toy (glm_binomial)\n\nsome text"
    version = tracker.register("toy_model", logged_glm, card, {"promoted": "True"})
    assert version == "1"
    details = tracker.client.get_model_version("toy_model", version)
    assert details.description == card
    assert details.tags["promoted"] == "True"
    assert details.run_id == logged_glm.run_id

    tracker.set_champion("toy_model", version)
    assert tracker.champion_version("toy_model") == ("1", logged_glm.run_id)
    champion = tracker.load_champion("toy_model")
    assert champion is not None
    assert (champion.version, champion.run_id) == ("1", logged_glm.run_id)
    assert champion.model.name == "glm_binomial"
    assert champion.model.threshold == t.glm.threshold
    np.testing.assert_allclose(champion.model.predict(t.test), t.glm.predict(t.test))


def test_champion_alias_moves_to_a_new_version(
    tracker: Tracker, trained_classification: Fitted
) -> None:
    t = trained_classification
    first = tracker.log_model("toy", t.glm, t.validation, {}, {})
    second = tracker.log_model("toy", t.lightgbm, t.validation, {}, {})
    v1 = tracker.register("moving", first, "v1", {})
    v2 = tracker.register("moving", second, "v2", {})
    assert (v1, v2) == ("1", "2")
    tracker.set_champion("moving", v1)
    tracker.set_champion("moving", v2)
    assert tracker.champion_version("moving") == ("2", second.run_id)
    alias = tracker.client.get_model_version_by_alias("moving", CHAMPION_ALIAS)
    assert str(alias.version) == "2"
    champion = tracker.load_champion("moving")
    assert champion is not None and champion.model.name == "lightgbm"
    np.testing.assert_array_equal(champion.model.predict(t.test), t.lightgbm.predict(t.test))


def test_log_evaluation_adds_metrics_tags_and_files(
    tracker: Tracker, logged_glm: LoggedModel, tmp_path: Path
) -> None:
    tracker.log_evaluation(
        logged_glm.run_id,
        {"test_roc_auc": 0.81, "test_roc_auc_ci_lower": 0.7},
        {"promoted": "False"},
        {"model_card.md": "# card", "report/summary.txt": "ok"},
    )
    run = tracker.client.get_run(logged_glm.run_id)
    assert run.data.metrics["test_roc_auc"] == 0.81
    assert run.data.metrics["test_roc_auc_ci_lower"] == 0.7
    assert run.data.tags["promoted"] == "False"
    local = mlflow.artifacts.download_artifacts(
        run_id=logged_glm.run_id,
        artifact_path="model_card.md",
        dst_path=str(tmp_path),
        tracking_uri=tracker.tracking_uri,
    )
    assert Path(local).read_text() == "# card"


def test_run_and_artifact_urls_open_the_model_training_view() -> None:
    tracker = Tracker("sqlite:///unused.db")
    assert tracker.run_url("http://localhost:5000/", "3", "abc") == (
        "http://localhost:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    )
    assert tracker.artifact_url("http://localhost:5000", "3", "abc", "r.html") == (
        "http://localhost:5000/#/experiments/3/runs/abc/artifactPath/r.html"
        "?workflowType=machine_learning"
    )
