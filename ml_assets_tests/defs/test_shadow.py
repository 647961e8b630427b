"""Shadow scoring over simulated days: a version refused only for its comparison with the
champion becomes the challenger, is scored beside the champion each day, and is retired when
worse; after a rollback that keeps the better version in the shadow, the shadow promotes it."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ml_assets import cli
from ml_assets.definitions import build_definitions
from ml_assets.defs.simulation import stage_metadata
from ml_assets.lib.alias_history import moves
from ml_assets.lib.churn import ChurnStream
from ml_assets.lib.spec import load_all_specs
from ml_assets.lib.tracking import Tracker
from ml_assets.summary import spec_summary
from ml_assets_tests.helpers import mlflow_client, run_job

NAME = "shadowed"
SPEC = """
name: shadowed
task: classification
source: {path: history.parquet}
target: churned
drop: [customer_id, snapshot_date]
candidates: CANDIDATES
success_criteria:
  thresholds: {roc_auc: {min: 0.55}}
  min_relative_improvement: 0.05
validation: {min_rows: 100}
evaluation: {bootstrap_samples: 200}
monitoring: {start_date: 2026-01-01, shadow_days: 3}
"""
STRONG = "{glm: {}}"
# One tree of one split: a model that beats the prior, but clearly worse than the GLM.
WEAK = (
    "{lightgbm: {budget: 1, num_boost_round: 1, search: {num_leaves: [2, 2], "
    "learning_rate: [0.1, 0.1]}}}"
)
STREAM = ChurnStream(customers_per_day=1000, seed=11)


def _aliases() -> dict[str, str]:
    return {a: str(v) for a, v in mlflow_client().get_registered_model(NAME).aliases.items()}


def _summary() -> list[str]:
    spec = next(s for s in load_all_specs(os.environ["ML_ASSETS_SPECS"]).specs if s.name == NAME)
    return spec_summary(spec, Tracker(mlflow_client().tracking_uri))


def _score(defs: dg.Definitions, instance: dg.DagsterInstance, day: str) -> dict[str, object]:
    result = defs.resolve_job_def(f"score_{NAME}").execute_in_process(
        instance=instance, partition_key=day
    )
    assert result.success
    return stage_metadata(result, "shadow_comparison")


def test_shadow_retires_a_worse_challenger_and_promotes_a_better_one(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ML_ASSETS_SPECS", str(tmp_path))  # where the CLI finds the spec
    pl.concat([STREAM.generate(d) for d in range(10)]).write_parquet(tmp_path / "history.parquet")
    incoming = home / "data" / NAME / "incoming"
    STREAM.write(incoming, range(10, 17))  # 2026-01-11 .. 2026-01-17
    spec_file = tmp_path / f"{NAME}.yaml"
    spec_file.write_text(SPEC.replace("CANDIDATES", STRONG))
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(build_definitions(str(tmp_path)), f"train_{NAME}", instance).success
    assert _aliases() == {"champion": "1"}

    # The weak model passes every absolute criterion but loses to the champion on the test
    # rows: not promoted, and the challenger from now on.
    spec_file.write_text(SPEC.replace("CANDIDATES", WEAK))
    defs = build_definitions(str(tmp_path))
    assert run_job(defs, f"train_{NAME}", instance).success
    assert _aliases() == {"champion": "1", "challenger": "2"}
    v2 = mlflow_client().get_model_version(NAME, "2")
    assert v2.tags["promoted"] == "False"
    assert v2.tags["gate_reasons"].startswith("not_worse_than_champion:")
    assert "now the challenger" in v2.tags["gate_reasons"]

    first = _score(defs, instance, "2026-01-11")
    assert first["decision"] == "continue" and first["labelled_days"] == 1
    served = pl.read_parquet(home / "data" / NAME / "predictions" / "2026-01-11.parquet")
    shadow = pl.read_parquet(home / "data" / NAME / "shadow_predictions" / "2026-01-11.parquet")
    assert served["model_version"].unique().to_list() == ["1"]  # the shadow is never served
    assert shadow["model_version"].unique().to_list() == ["2"]
    assert shadow["champion__model_version"].unique().to_list() == ["1"]
    assert shadow["customer_id"].to_list() == served["customer_id"].to_list()  # same rows
    assert shadow["champion__score"].to_list() == served["score"].to_list()
    assert not shadow["score"].equals(served["score"])
    _score(defs, instance, "2026-01-12")
    third = _score(defs, instance, "2026-01-13")
    assert third["labelled_days"] == 3 and third["labelled_rows"] == 3000
    assert third["decision"] == "retire", third["outcome"]
    upper = float(str(third["paired_improvement_roc_auc"]).split(", ")[1].rstrip("]"))
    assert upper < 0  # worse, and surely so
    assert _aliases() == {"champion": "1"}
    assert "RETIRED" in mlflow_client().get_model_version(NAME, "2").tags["shadow_comparison"]
    assert _score(defs, instance, "2026-01-14") == {}  # no challenger, no shadow
    # The comparison asked for alone on that day: nothing to compare, said, and no failure.
    alone = defs.resolve_job_def(f"score_{NAME}").execute_in_process(
        instance=instance,
        partition_key="2026-01-14",
        asset_selection=[dg.AssetKey([NAME, "shadow_comparison"])],
    )
    assert alone.success and stage_metadata(alone, "shadow_comparison") == {}

    # A rollback to the weak version that keeps the better one in its shadow.
    assert (
        cli.main(["rollback", NAME, "--to", "2", "--reason", "drill", "--keep-as-challenger"]) == 0
    )
    assert _aliases() == {"champion": "2", "challenger": "1"}
    lines = _summary()
    assert lines[0] == f"{NAME}: CHAMPION is v2 (lightgbm), by a rollback"
    assert "challenger: v1 (by " in lines[-3] and "kept in the shadow: drill" in lines[-3]
    assert "shadow 2026-01-13:" in lines[-2] and "RETIRED" in lines[-2]
    assert "last rollback:" in lines[-1] and "champion: v1 -> v2" in lines[-1]
    # By hand: the champion cannot be its own challenger; a version that does not load none.
    capsys.readouterr()
    for version, reason, said in [
        ("2", "x", "v2 of 'shadowed' cannot be the challenger: it is the champion; a"),
        ("9", "x", "cannot be the challenger: there is no such version; the registered"),
        ("1", " ", "challenger not changed: say why"),
    ]:
        assert cli.main(["challenger", NAME, "--version", version, "--reason", reason]) == 2
        assert said in capsys.readouterr().err
    assert _aliases() == {"champion": "2", "challenger": "1"}
    assert cli.main(["challenger", NAME, "--version", "1", "--reason", "start over"]) == 0
    assert "v1 (set again: its shadow comparison starts over)" in capsys.readouterr().out
    outcomes = [_score(defs, instance, d) for d in ("2026-01-15", "2026-01-16", "2026-01-17")]
    assert [o["decision"] for o in outcomes] == ["continue", "continue", "promote"]
    assert outcomes[-1]["labelled_days"] == 3  # the days before the rollback are another pair
    lower = float(str(outcomes[-1]["paired_improvement_roc_auc"]).split("[")[1].split(",")[0])
    assert lower > 0
    assert _aliases() == {"champion": "1"}
    v1 = mlflow_client().get_model_version(NAME, "1")
    assert v1.tags["promoted"] == "True" and "PROMOTED" in v1.tags["shadow_comparison"]
    assert v1.tags["gate_reasons"].startswith("all criteria passed in the shadow of v2")
    lines = _summary()
    head = f"{NAME}: CHAMPION is v1 (glm_binomial), promoted from the shadow; the latest, v2"
    assert lines[0].startswith(head) and "shadow_promotion champion: v2 -> v1" in lines[0]
    assert lines[-3] == "  challenger: none" and "v1 PROMOTED to champion" in lines[-2]
    actions = [(m.alias, m.action, m.to_version) for m in moves(mlflow_client(), NAME)]
    assert actions == [
        ("champion", "promotion", "1"),
        ("challenger", "challenger", "2"),
        ("challenger", "retired", None),
        ("champion", "rollback", "2"),
        ("challenger", "challenger", "1"),
        ("challenger", "challenger", "1"),
        ("champion", "shadow_promotion", "1"),
        ("challenger", "promoted", None),
    ]
