"""Bad input fails fast with one clear message, and nothing downstream runs or is promoted."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from ml_assets.definitions import build_definitions
from ml_assets_tests.helpers import (
    check_results,
    dagster_cli,
    materialized,
    mlflow_client,
    run_job,
    step_error_text,
)

SPEC = """
name: bad
task: classification
source: {{path: data.csv}}
target: label
{extra}
candidates:
  lightgbm: {{budget: 1}}
validation: {{min_rows: 20{validation}}}
evaluation: {{bootstrap_samples: 100}}
"""


def _frame(rows: int = 200, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    return pl.DataFrame(
        {"x": x, "z": rng.normal(size=rows), "label": (x + rng.normal(size=rows) > 0).astype(int)}
    )


def _spec_dir(
    tmp_path: Path, frame: pl.DataFrame | None, extra: str = "", validation: str = ""
) -> Path:
    directory = tmp_path / "specs"
    directory.mkdir()
    (directory / "bad.yaml").write_text(SPEC.format(extra=extra, validation=validation))
    if frame is None:
        (directory / "data.csv").write_text("")
    else:
        frame.write_csv(directory / "data.csv")
    return directory


def _run(spec_dir: Path) -> dg.ExecuteInProcessResult:
    return run_job(build_definitions(str(spec_dir)), "train_bad", dg.DagsterInstance.ephemeral())


def _nothing_promoted() -> bool:
    return not mlflow_client().search_registered_models("name='bad'")


def test_empty_file(home: Path, tmp_path: Path) -> None:
    result = _run(_spec_dir(tmp_path, None))
    assert not result.success
    assert "is empty" in step_error_text(result) and "data.csv" in step_error_text(result)
    assert materialized(result) == set() and _nothing_promoted()


def test_missing_target_column(home: Path, tmp_path: Path) -> None:
    result = _run(_spec_dir(tmp_path, _frame().drop("label")))
    assert not result.success
    text = step_error_text(result)
    assert "'label'" in text and "available columns" in text
    assert materialized(result) == set() and _nothing_promoted()


def test_all_null_target(home: Path, tmp_path: Path) -> None:
    frame = _frame().with_columns(pl.lit(None, dtype=pl.Int64).alias("label"))
    result = _run(_spec_dir(tmp_path, frame))
    assert not result.success
    check = check_results(result)["features_contract"]
    assert not check.passed
    assert "expect_column_values_to_not_be_null" in str(check.metadata["failures"].value)
    assert materialized(result) == {"bad/raw_data", "bad/features"} and _nothing_promoted()


def test_single_class_target(home: Path, tmp_path: Path) -> None:
    result = _run(_spec_dir(tmp_path, _frame().with_columns(pl.lit(1).alias("label"))))
    assert not result.success
    failures = str(check_results(result)["features_contract"].metadata["failures"].value)
    assert "expect_column_unique_value_count_to_be_between" in failures and "label" in failures
    assert "bad/splits" not in materialized(result) and _nothing_promoted()


def test_wrong_column_type_against_declared_contract(home: Path, tmp_path: Path) -> None:
    frame = _frame().with_columns(pl.format("level {}", pl.col("z").round(1)).alias("z"))
    result = _run(_spec_dir(tmp_path, frame, validation=", columns: {z: {type: numeric}}"))
    assert not result.success
    check = check_results(result)["raw_data_contract"]
    failures = str(check.metadata["failures"].value)
    assert (
        not check.passed
        and "expect_column_values_to_be_in_type_list" in failures
        and "z" in failures
    )
    assert materialized(result) == {"bad/raw_data"} and _nothing_promoted()


def test_spec_typo_fails_definitions_validate_with_file_and_field(
    home: Path, tmp_path: Path
) -> None:
    spec_dir = _spec_dir(tmp_path, _frame(), "metricz: {primary: roc_auc}")
    out = dagster_cli(
        "definitions",
        "validate",
        "-m",
        "ml_assets.definitions",
        env={"ML_ASSETS_SPECS": str(spec_dir)},
    )
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "bad.yaml" in text and "metricz" in text and "Did you mean 'metrics'" in text


@pytest.mark.parametrize(
    ("extra", "expected"),
    [("", "field 'target': required field is missing"), ("task: forecastingg", "field 'task'")],
)
def test_missing_or_invalid_field_names_it(tmp_path: Path, extra: str, expected: str) -> None:
    from ml_assets.lib.spec import SpecError, load_spec

    text = "name: bad\ntask: classification\nsource: {statsmodels: fair}\n"
    if extra:
        text = text.replace("task: classification\n", "") + f"target: y\n{extra}\n"
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match="bad.yaml") as err:
        load_spec(path)
    assert expected in str(err.value)


def test_failed_run_exits_non_zero_from_the_cli(home: Path, tmp_path: Path) -> None:
    spec_dir = _spec_dir(tmp_path, None)
    out = dagster_cli(
        "job",
        "execute",
        "-m",
        "ml_assets.definitions",
        "-j",
        "train_bad",
        env={"ML_ASSETS_SPECS": str(spec_dir)},
    )
    assert out.returncode != 0
    assert "is empty" in out.stdout + out.stderr
