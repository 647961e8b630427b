"""The parquet IO manager: round trips, split filtering, local and fsspec storage."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ml_assets.defs.resources import (
    MAY_BE_EMPTY_METADATA_KEY,
    SCHEMA_ONLY_METADATA_KEY,
    ArtifactStore,
    PolarsParquetIOManager,
)
from ml_assets.lib.data import SPLIT


def _materialize(base_dir: str) -> tuple[pl.DataFrame, dict]:
    seen: dict = {}

    @dg.asset(key=["s", "splits"])
    def splits() -> pl.DataFrame:
        return pl.DataFrame({"x": [1, 2, 3, 4], SPLIT: ["train", "validation", "test", "train"]})

    @dg.asset(
        key=["s", "model"],
        ins={"splits": dg.AssetIn(["s", "splits"], metadata={"splits": ["train", "validation"]})},
    )
    def model(splits: pl.DataFrame) -> dict:
        seen["model"] = splits
        return {"fitted_on": splits.height}

    @dg.asset(
        key=["s", "report"],
        ins={"splits": dg.AssetIn(["s", "splits"]), "model": dg.AssetIn(["s", "model"])},
    )
    def report(splits: pl.DataFrame, model: dict) -> None:
        seen["report"], seen["loaded_model"] = splits, model

    result = dg.materialize(
        [splits, model, report], resources={"io_manager": PolarsParquetIOManager(base_dir=base_dir)}
    )
    assert result.success
    return seen["model"], seen


@pytest.mark.parametrize("scheme", ["local", "memory"])
def test_split_filter_and_round_trip(tmp_path: Path, scheme: str) -> None:
    base = str(tmp_path) if scheme == "local" else "memory://ml_assets_test"
    model_input, seen = _materialize(base)
    assert model_input[SPLIT].to_list() == ["train", "validation", "train"]
    assert seen["report"].height == 4
    assert seen["loaded_model"] == {"fitted_on": 3}


def test_artifact_store_keeps_the_url_scheme() -> None:
    store = ArtifactStore(base_dir="memory://bucket/ml")
    path = store.report_path("affairs", "run1")
    assert str(path).startswith("memory://bucket/ml/affairs/reports/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<html/>")
    assert path.read_text() == "<html/>"


def test_schema_only_input_reads_columns_and_types_without_rows(tmp_path: Path) -> None:
    seen: dict = {}

    @dg.asset(key=["s", "raw"])
    def raw() -> pl.DataFrame:
        return pl.DataFrame({"x": [1.5, 2.5], "c": ["a", "b"], "n": [1, 2]})

    @dg.asset(
        key=["s", "uses_schema"],
        ins={"raw": dg.AssetIn(["s", "raw"], metadata={SCHEMA_ONLY_METADATA_KEY: True})},
    )
    def uses_schema(raw: pl.DataFrame) -> None:
        seen["raw"] = raw

    io = PolarsParquetIOManager(base_dir=str(tmp_path))
    assert dg.materialize([raw, uses_schema], resources={"io_manager": io}).success
    assert seen["raw"].height == 0
    assert dict(seen["raw"].schema) == {"x": pl.Float64, "c": pl.String, "n": pl.Int64}


def test_a_partitioned_input_reads_what_was_written_and_names_what_was_not(
    tmp_path: Path,
) -> None:
    days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-04")
    window = dg.TimeWindowPartitionMapping(start_offset=-2)
    seen: dict = {}

    @dg.asset(key=["p", "daily"], partitions_def=days)
    def daily(context) -> pl.DataFrame:  # noqa: ANN001 (a string annotation Dagster refuses)
        extra = {"new": [1]} if context.partition_key == "2026-01-02" else {}
        return pl.DataFrame({"day": [context.partition_key], **extra})

    def reader(name: str, metadata: dict) -> dg.AssetsDefinition:
        @dg.asset(
            key=["p", name],
            partitions_def=days,
            ins={"daily": dg.AssetIn(["p", "daily"], partition_mapping=window, metadata=metadata)},
        )
        def read(daily: pl.DataFrame) -> None:
            seen[name] = daily

        return read

    strict, lenient = reader("strict", {}), reader("lenient", {MAY_BE_EMPTY_METADATA_KEY: True})
    io = {"io_manager": PolarsParquetIOManager(base_dir=str(tmp_path))}
    for day in ("2026-01-01", "2026-01-02"):
        assert dg.materialize([daily], partition_key=day, resources=io).success
    assert dg.materialize([daily, strict], partition_key="2026-01-03", selection=[strict],
                          resources=io).success  # fmt: skip
    # Written days only, their columns united (a column added on a later day is null before).
    assert seen["strict"]["day"].to_list() == ["2026-01-01", "2026-01-02"]
    assert seen["strict"]["new"].to_list() == [None, 1]
    (tmp_path / "p" / "daily" / "2026-01-01.parquet").unlink()
    (tmp_path / "p" / "daily" / "2026-01-02.parquet").unlink()
    assert dg.materialize([daily, lenient], partition_key="2026-01-03", selection=[lenient],
                          resources=io).success  # fmt: skip
    assert seen["lenient"].is_empty()
    with pytest.raises(
        FileNotFoundError, match="p/daily .* for 2026-01-01, 2026-01-02, 2026-01-03"
    ):
        dg.materialize([daily, strict], partition_key="2026-01-03", selection=[strict],
                       resources=io)  # fmt: skip


@pytest.mark.parametrize(
    ("tracking", "explicit", "expected"),
    [
        ("sqlite:///{home}/mlflow.db", None, "file://{home}/mlartifacts"),
        ("postgresql+psycopg2://u@db:5432/mlflow", None, "file://{home}/mlartifacts"),
        ("http://127.0.0.1:15000", None, None),
        ("https://mlflow.internal", "s3://team/mlflow", "s3://team/mlflow"),
    ],
)
def test_artifacts_go_where_the_store_says_never_to_the_working_directory(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tracking: str,
    explicit: str | None,
    expected: str | None,
) -> None:
    from ml_assets.defs.resources import default_artifact_root

    monkeypatch.setenv("ML_ASSETS_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.format(home=tmp_path))
    if explicit:
        monkeypatch.setenv("ML_ASSETS_MLFLOW_ARTIFACTS", explicit)
    else:
        monkeypatch.delenv("ML_ASSETS_MLFLOW_ARTIFACTS", raising=False)
    want = expected.format(home=tmp_path.resolve()) if expected else None
    assert default_artifact_root() == want
