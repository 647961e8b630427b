"""The production loop end to end on the built-in churn spec: real Dagster runs, the real
sensor and schedules, a real MLflow registry, a synthetic stream with drift from day 20."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from ml_assets.definitions import build_definitions
from ml_assets.defs.simulation import simulate, stage_metadata
from ml_assets.lib.churn import REGIONS, ChurnStream
from ml_assets_tests.helpers import check_results, mlflow_client, run_job

DRIFT_DAY = 20  # 2026-01-21


def _gate(version: str) -> tuple[dict[str, float], dict[str, str]]:
    client = mlflow_client()
    run = client.get_run(client.get_model_version("churn", version).run_id)
    return run.data.metrics, run.data.tags


def test_drift_is_detected_retraining_runs_once_and_the_gate_decides(home: Path) -> None:
    stream = ChurnStream(customers_per_day=1000, drift_day=DRIFT_DAY)
    incoming = home / "data" / "churn" / "incoming"
    stream.write(incoming, range(14))
    defs = build_definitions()
    instance = dg.DagsterInstance.ephemeral()
    first = run_job(defs, "train_churn", instance)
    assert first.success
    client = mlflow_client()
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "1"
    # The built-in spec's fairness section: a table per region, in the report's metadata.
    report = stage_metadata(first, "evaluation_report")
    for region in REGIONS:
        assert region in report["fairness_groups"], report["fairness_groups"]
    for difference in ("demographic_parity_difference", "equalized_odds_difference"):
        assert difference in report["fairness_disparities"]
    assert isinstance(report["fairness_within_bound"], bool)

    sim = simulate(defs, instance, stream, incoming, range(14, 30))
    by_day = {d.day: d for d in sim.days}
    calm = [d for d in sim.days if d.day < "2026-01-21"]
    assert len(calm) == 6
    for day in calm:  # before the drift: nothing recommended, nothing requested
        assert day.drift["retrain_recommended"] is False, (day.day, day.drift["reasons"])
        assert day.requested is None and day.drift["model_version"] == "1"

    # The first drifted day: detected, and exactly one retraining run requested.
    drifted = by_day["2026-01-21"]
    assert drifted.drift["retrain_recommended"] is True
    for feature in ("usage_hours", "support_contacts", "billing"):
        assert feature in drifted.drift["drifted_features"]
    assert float(drifted.drift["prediction_psi"]) > 0.2
    page = Path(str(drifted.drift["drift_page_file"])).read_text()
    assert page.count("data:image/png") == 1
    assert "Retraining recommended" in page and str(drifted.drift["realized_roc_auc_ci"]) in page
    assert str(drifted.drift["champion_test_ci"]) in page  # beside the realized one
    assert "/artifactPath/drift_report.html" in str(drifted.drift["drift_page"])
    assert [r.run_key for r in sim.requests] == ["churn:drift:2026-01-21"]
    tags = sim.requests[0].tags
    assert tags["ml_assets/trigger"] == "drift" and tags["ml_assets/window_end"] == "2026-01-21"
    assert "usage_hours" in tags["ml_assets/drifted_features"]
    assert float(tags["ml_assets/max_psi"]) > 0.5 and tags["ml_assets/champion_version"] == "1"
    for day in sim.days:  # drift goes on, but within the cooldown nothing more is requested
        if day.day > "2026-01-21":
            assert day.drift["retrain_recommended"] is True
            assert day.requested is None and "cooldown" in day.sensor

    # Another tick with the loop's cursor, on the same newest report, requests nothing.
    sensor = defs.resolve_sensor_def("retrain_churn_on_drift")
    again = sensor.evaluate_tick(
        dg.build_sensor_context(
            instance=instance, cursor=sim.cursor, definitions=defs, resources=defs.resources
        )
    )
    assert again.run_requests == [] and "cooldown" in (again.skip_message or "")

    # The requested run trained on the 14 days ending at the drifted day, was registered, and
    # took the alias only if the gate (champion compared on the same recent holdout) said so.
    retrain = drifted.retrain
    assert retrain is not None and retrain["success"]
    assert retrain["window"] == "2026-01-08 .. 2026-01-21"
    assert retrain["registered_version"] == "2"
    metrics, run_tags = _gate("2")
    assert "improvement_vs_champion_roc_auc" in metrics  # v1 was scored on the same rows
    promoted = run_tags["promoted"] == "True"
    assert retrain["promoted"] is promoted
    assert retrain["champion_version"] == ("2" if promoted else "1")
    if not promoted:
        assert run_tags["gate_reasons"] != "all criteria passed"
    else:
        assert metrics["improvement_vs_champion_roc_auc"] >= 0
    assert by_day["2026-01-22"].drift["model_version"] == retrain["champion_version"]

    # The weekly safety net retrains on the most recent 14 days (mostly drifted): it beats the
    # champion on that recent holdout, so the alias moves to it.
    weekly = sim.weekly
    assert weekly is not None and weekly["success"]
    assert weekly["window"] == "2026-01-17 .. 2026-01-30"
    assert weekly["registered_version"] == "3" and weekly["promoted"] is True
    assert str(weekly["vs_champion"]).endswith(f"over v{retrain['champion_version']}")
    metrics, run_tags = _gate("3")
    assert metrics["improvement_vs_champion_roc_auc"] > 0.01
    assert metrics["champion_test_roc_auc"] < metrics["test_roc_auc"]
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "3"

    # Re-running the old drift retraining (window ending 2026-01-21) now would compare with a
    # champion that learned from those test days: refused, and the champion stays.
    stale = defs.resolve_job_def("train_churn").execute_in_process(
        instance=instance, tags=dict(tags), raise_on_error=False
    )
    gate = check_results(stale)["promotion_gate"]
    assert not gate.passed and "v3 was trained on data up to 2026-01-27" in str(gate.description)
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "3"

    # The daemon taking over from the simulation, without its cursor: no run requested.
    sensor = defs.resolve_sensor_def("retrain_churn_on_drift")
    handover = sensor.evaluate_tick(
        dg.build_sensor_context(
            instance=instance, cursor=None, definitions=defs, resources=defs.resources
        )
    )
    assert handover.run_requests == [] and "cooldown" in (handover.skip_message or "")
    arrival = defs.resolve_sensor_def("score_churn_on_arrival")
    idle = arrival.evaluate_tick(
        dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
    )
    assert idle.run_requests == []
    assert "every day up to 2026-01-30 is scored" in (idle.skip_message or "")
    # The loop's runs carry the run keys the daemon checks before launching a request.
    keys = {r.tags.get("dagster/run_key") for r in instance.get_runs()}
    assert "churn:drift:2026-01-21" in keys
    assert any(str(k).startswith("churn:score:2026-01-30:") for k in keys)

    scored = pl.read_parquet(home / "data" / "churn" / "predictions" / "2026-01-30.parquet")
    assert scored.height == 1000 and scored["model_version"].unique().to_list() == [
        retrain["champion_version"]
    ]
