"""Rollback through the rollback_<spec> job and the CLI: the alias moves back, the move is
recorded, and the next day's partition is scored by the older version."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ml_assets import cli
from ml_assets.definitions import build_definitions
from ml_assets.lib.churn import ChurnStream
from ml_assets.lib.names import PROMOTED_TAG
from ml_assets.lib.records import LoggedModel
from ml_assets.lib.tracking import CHAMPION_ALIAS, Tracker
from ml_assets_tests.defs.test_predictions import SPEC
from ml_assets_tests.helpers import mlflow_client, run_job, step_error_text

NAME = "shop_churn"


def _scored_by(home: Path, day: str) -> list[str]:
    out = pl.read_parquet(home / "data" / NAME / "predictions" / f"{day}.parquet")
    return out["model_version"].unique().to_list()


def test_a_rollback_moves_the_alias_and_the_next_day_is_scored_by_the_older_version(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ML_ASSETS_SPECS", str(tmp_path))  # where the CLI finds the spec
    stream = ChurnStream(customers_per_day=600)
    pl.concat([stream.generate(d) for d in range(8)]).write_parquet(tmp_path / "history.parquet")
    (tmp_path / f"{NAME}.yaml").write_text(SPEC)
    stream.write(home / "data" / NAME / "incoming", range(8, 12))
    defs = build_definitions(str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(defs, f"train_{NAME}", instance).success
    # A second version goes live (as a later promotion would), and scores a day.
    client = mlflow_client()
    tracker = Tracker(client.tracking_uri)
    first = client.get_model_version_by_alias(NAME, CHAMPION_ALIAS)
    v1 = str(first.version)
    experiment = client.get_run(first.run_id).info.experiment_id
    second = tracker.register(
        NAME, LoggedModel(first.run_id, first.source, experiment), "card", {PROMOTED_TAG: "True"}
    )
    tracker.set_champion(NAME, second, "Dagster run later", "passed every gate criterion")
    score = defs.resolve_job_def(f"score_{NAME}")
    assert score.execute_in_process(instance=instance, partition_key="2026-01-10").success
    assert _scored_by(home, "2026-01-10") == [second]

    config = {"ops": {f"{NAME}__rollback_champion": {"config": {"reason": "bad scores"}}}}
    back = defs.resolve_job_def(f"rollback_{NAME}").execute_in_process(
        instance=instance, run_config=config, tags={"dagster/user": "alice@example.com"}
    )
    assert back.success
    assert str(client.get_model_version_by_alias(NAME, CHAMPION_ALIAS).version) == v1
    assert score.execute_in_process(instance=instance, partition_key="2026-01-11").success
    assert _scored_by(home, "2026-01-11") == [v1]

    assert cli.main(["history", NAME]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"'{NAME}': champion is v{v1}; 3 recorded move(s)"
    assert "promotion" in lines[1] and "no champion -> v1" in lines[1]
    assert "promotion" in lines[2] and "v1 -> v2" in lines[2]
    assert "rollback" in lines[3] and "v2 -> v1" in lines[3]
    assert "by alice@example.com: bad scores" in lines[3]

    # The CLI does the same, and refuses what it cannot do, saying why.
    assert cli.main(["rollback", NAME, "--to", "2", "--reason", "v2 fixed", "--who", "bob"]) == 0
    assert "v1 -> v2 (by bob" in capsys.readouterr().out
    assert cli.main(["rollback", NAME, "--to", "7", "--reason", "typo"]) == 2
    assert "has no version 7" in capsys.readouterr().err
    refused = defs.resolve_job_def(f"rollback_{NAME}").execute_in_process(
        instance=instance,
        run_config={"ops": {f"{NAME}__rollback_champion": {"config": {"reason": "x", "to": 2}}}},
        raise_on_error=False,
    )
    assert not refused.success and "v2 is already the champion" in step_error_text(refused)
    assert str(client.get_model_version_by_alias(NAME, CHAMPION_ALIAS).version) == "2"
