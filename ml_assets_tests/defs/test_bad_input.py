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
    # The other specs still load; the broken one is named with its error, and its job fails.
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    assert "bad.yaml" in text and "metricz" in text and "Did you mean 'metrics'" in text
    defs = build_definitions(str(spec_dir))
    assert "metricz" in str(
        defs.resolve_assets_def(dg.AssetKey(["broken_specs", "bad"])).descriptions_by_key
    )
    failed = run_job(defs, "train_bad", dg.DagsterInstance.ephemeral())
    assert not failed.success and "Did you mean 'metrics'" in step_error_text(failed)


def test_a_broken_spec_hides_no_other_spec(home: Path, user_specs: Path) -> None:
    """A missing source file or an invalid field in one user spec: that spec is reported,
    and every other spec's jobs, schedules and sensors load and run."""
    from ml_assets.defs.broken import BrokenSpecWarning

    (user_specs / "gone.yaml").write_text(
        "name: gone\ntask: classification\nsource: {path: nowhere.csv}\ntarget: y\n"
    )
    (user_specs / "negative.yaml").write_text(
        "name: negative\ntask: classification\nsource: {statsmodels: fair}\n"
        "target: affairs\nsplit: {test_fraction: -0.2}\n"
    )
    with pytest.warns(BrokenSpecWarning) as caught:
        defs = build_definitions(str(user_specs))
    assert len(caught) == 2 and "nowhere.csv" in str(caught[0].message)
    for job in ("train_user_affairs", "train_affairs", "train_churn", "score_churn"):
        assert defs.resolve_job_def(job) is not None
    assert defs.resolve_sensor_def("retrain_churn_on_drift") is not None
    instance = dg.DagsterInstance.ephemeral()
    gone = run_job(defs, "train_gone", instance)
    assert not gone.success and "nowhere.csv does not exist" in step_error_text(gone)
    negative = run_job(defs, "train_negative", instance)
    assert not negative.success and "test_fraction" in step_error_text(negative)
    assert run_job(defs, "train_user_affairs", instance).success


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


# --- values a contract of types misses: refused at features, before any model trains -------


def _z_as(values: list[object]) -> pl.DataFrame:
    frame = _frame()
    return frame.with_columns(pl.Series("z", (values * frame.height)[: frame.height]))


@pytest.mark.parametrize(
    ("frame", "extra", "expectation", "words"),
    [
        pytest.param(
            _frame().with_columns(pl.lit(None, dtype=pl.Float64).alias("z")),
            "",
            "all_null",
            "column 'z' is null in all 200 rows",
            id="all-null feature",
        ),
        pytest.param(
            _frame().with_columns(
                pl.when(pl.int_range(pl.len()) < 3)
                .then(float("inf"))
                .otherwise(pl.col("z"))
                .alias("z")
            ),
            "",
            "infinite_values",
            "column 'z' holds 3 infinite value(s) in 200 rows",
            id="infinite values",
        ),
        pytest.param(
            _frame().with_columns(pl.format("C-{}", pl.int_range(pl.len())).alias("customer")),
            "",
            "identifier",
            "column 'customer' has 200 distinct values in 200 rows",
            id="identifier column",
        ),
        pytest.param(
            _frame().with_columns(pl.int_range(pl.len()).shuffle(seed=1).alias("row_no")),
            "",
            "identifier",
            "column 'row_no' numbers its 200 rows",
            id="row numbers",
        ),
        pytest.param(
            _frame().with_columns(pl.lit(float("nan")).alias("z")),
            "",
            "all_null",
            "column 'z' is null in all 200 rows",
            id="all-NaN feature",
        ),
        pytest.param(
            _z_as(["1.5", "2", "n/a", "3.25", "7", "unknown", "4", "8"]),
            "",
            "mixed_types",
            "column 'z' mixes 150 numbers with 50 text values",
            id="numbers mixed with words",
        ),
        pytest.param(
            _frame().with_columns(
                pl.date_range(
                    pl.date(2024, 1, 1), pl.date(2024, 1, 1) + pl.duration(days=199), eager=True
                ).alias("signup")
            ),
            "",
            "date_as_feature",
            "column 'signup' holds dates (Date)",
            id="date read as a feature",
        ),
        pytest.param(
            _frame().with_columns(pl.lit(4.0).alias("z")),
            "",
            "constant",
            "column 'z' has the one value 4.0 in every non-null row",
            id="constant feature",
        ),
        pytest.param(
            _frame().with_columns((pl.int_range(pl.len()) < 4).cast(pl.Int64).alias("label")),
            "",
            "rare_class",
            "class(es) 1: 4 of 'label' have fewer than 10 rows",
            id="too rare a class",
        ),
    ],
)
def test_bad_values_are_refused_before_training(
    home: Path, tmp_path: Path, frame: pl.DataFrame, extra: str, expectation: str, words: str
) -> None:
    result = _run(_spec_dir(tmp_path, frame, extra=extra))
    assert not result.success
    check = check_results(result)["features_contract"]
    assert not check.passed
    failures = str(check.metadata["failures"].value)
    assert expectation in failures and words in failures, failures
    assert "spec 'bad'" in failures
    assert materialized(result) == {"bad/raw_data", "bad/features"} and _nothing_promoted()


def test_constant_regression_target_is_refused_before_training(home: Path, tmp_path: Path) -> None:
    directory = tmp_path / "specs"
    directory.mkdir()
    spec = SPEC.format(extra="", validation="").replace("classification", "regression")
    (directory / "bad.yaml").write_text(spec)
    _frame().with_columns(pl.lit(2.5).alias("label")).write_csv(directory / "data.csv")
    result = _run(directory)
    failures = str(check_results(result)["features_contract"].metadata["failures"].value)
    assert "constant_target" in failures and "every one of the 200 rows has label = 2.5" in failures
    assert "bad/splits" not in materialized(result) and _nothing_promoted()


def test_duplicated_header_is_refused_at_raw_data(home: Path, tmp_path: Path) -> None:
    directory = _spec_dir(tmp_path, _frame())
    text = (directory / "data.csv").read_text().splitlines()
    (directory / "data.csv").write_text("\n".join([text[0].replace("z", "x"), *text[1:]]) + "\n")
    result = _run(directory)
    assert not result.success
    message = step_error_text(result)
    assert "repeats the column header(s) ['x']" in message and "data.csv" in message
    assert materialized(result) == set() and _nothing_promoted()


def test_nan_values_are_missing_values_for_every_model(home: Path, tmp_path: Path) -> None:
    """A CSV's 'NaN' is read as a missing value: counted, imputed for the GLM (statsmodels
    refuses NaN), and the run trains and promotes as with empty cells."""
    directory = _spec_dir(tmp_path, _frame())
    spec = (directory / "bad.yaml").read_text()
    (directory / "bad.yaml").write_text(spec.replace("lightgbm:", "glm: {}\n  lightgbm:"))
    frame = _frame(400).with_columns(
        pl.when(pl.int_range(pl.len()) % 9 == 0).then(float("nan")).otherwise("z").alias("z")
    )
    frame.write_csv(directory / "data.csv")
    assert "NaN" in (directory / "data.csv").read_text()
    result = _run(directory)
    assert result.success, step_error_text(result)
    assert {"bad/candidate_glm", "bad/champion_model"} <= materialized(result)
