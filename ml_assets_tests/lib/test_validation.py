"""validation.py: learned contracts and real Great Expectations suites on small frames."""

from __future__ import annotations

import datetime as dt
import gc
import tracemalloc
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ml_assets.lib.data import ROW_ID, build_features
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.validation import (
    LearnedContract,
    ValidationOutcome,
    build_expectations,
    categorical_columns,
    learn_contract,
    type_family,
    validate,
)
from ml_assets_tests.lib.conftest import spec_from

SPEC = spec_from({"validation": {"min_rows": 50, "max_duplicate_fraction": 0.05}})


def _validate(
    spec: MLSpec, frame: pl.DataFrame, stage: str, learned: LearnedContract | None = None
) -> ValidationOutcome:
    return validate(spec, stage, frame, learned)  # type: ignore[arg-type]


def _failed(outcome: ValidationOutcome) -> set[tuple[str, str | None]]:
    return {(f.expectation, f.column) for f in outcome.failures}


@pytest.fixture
def raw(classification_frame: pl.DataFrame) -> pl.DataFrame:
    return classification_frame.head(200)


@pytest.fixture
def learned(raw: pl.DataFrame) -> LearnedContract:
    return learn_contract(SPEC, raw.schema, build_features(SPEC, raw))


def test_clean_frame_passes_both_stages_without_a_contract(raw: pl.DataFrame) -> None:
    raw_outcome = _validate(SPEC, raw, "raw_data")
    features_outcome = _validate(SPEC, build_features(SPEC, raw), "features")
    assert raw_outcome.success, raw_outcome.summary()
    assert features_outcome.success, features_outcome.summary()
    assert raw_outcome.failures == [] and features_outcome.failures == []
    assert raw_outcome.rows == 200
    assert features_outcome.summary().startswith("features: all ")


def test_clean_frame_passes_both_stages_against_contract_learned_from_it(
    raw: pl.DataFrame, learned: LearnedContract
) -> None:
    """A frame with a string column must pass the contract learned from that same frame."""
    raw_outcome = _validate(SPEC, raw, "raw_data", learned)
    features_outcome = _validate(SPEC, build_features(SPEC, raw), "features", learned)
    assert raw_outcome.success, raw_outcome.summary()
    assert features_outcome.success, features_outcome.summary()


def test_numeric_only_frame_passes_against_its_learned_contract(raw: pl.DataFrame) -> None:
    numeric = raw.drop("color")
    features = build_features(SPEC, numeric)
    contract = learn_contract(SPEC, numeric.schema, features)
    raw_outcome = _validate(SPEC, numeric, "raw_data", contract)
    features_outcome = _validate(SPEC, features, "features", contract)
    assert raw_outcome.success, raw_outcome.summary()
    assert features_outcome.success, features_outcome.summary()
    # row count, existence of 4 columns and a type check for each of them
    assert raw_outcome.evaluated == 1 + 3 + 3


def test_date_and_bool_columns_pass_against_their_learned_contract() -> None:
    n = 60
    raw = pl.DataFrame(
        {
            "day": [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(n)],
            "flag": [i % 3 == 0 for i in range(n)],
            "x": np.arange(n, dtype=np.float64),
            "y": [i % 2 for i in range(n)],
        }
    )
    features = build_features(SPEC, raw)
    contract = learn_contract(SPEC, raw.schema, features)
    assert contract.columns["day"]["type"] == "datetime"
    assert contract.columns["flag"] == {"type": "bool", "allowed": [False, True], "null_rate": 0.0}
    outcome = _validate(SPEC, raw, "raw_data", contract)
    assert outcome.success, outcome.summary()


def test_target_all_null_fails_features_stage(raw: pl.DataFrame) -> None:
    features = build_features(SPEC, raw).with_columns(pl.lit(None, dtype=pl.Int64).alias("y"))
    outcome = _validate(SPEC, features, "features")
    assert not outcome.success
    assert ("expect_column_values_to_not_be_null", "y") in _failed(outcome)
    null_failure = next(
        f for f in outcome.failures if f.expectation == "expect_column_values_to_not_be_null"
    )
    assert null_failure.unexpected_count == 200
    assert "- expect_column_values_to_not_be_null on y:" in outcome.summary()


def test_single_class_target_fails_label_cardinality(raw: pl.DataFrame) -> None:
    features = build_features(SPEC, raw).with_columns(pl.lit(1).alias("y"))
    outcome = _validate(SPEC, features, "features")
    assert _failed(outcome) == {("expect_column_unique_value_count_to_be_between", "y")}
    assert "observed 1" in outcome.failures[0].detail
    assert "'min_value': 2" in outcome.failures[0].detail


def test_regression_target_has_no_cardinality_expectation(raw: pl.DataFrame) -> None:
    spec = spec_from({"validation": {"min_rows": 50}}, task="regression")
    features = build_features(spec, raw).with_columns((pl.col(ROW_ID) % 7).alias("y"))
    outcome = _validate(spec, features, "features")
    assert outcome.success, outcome.summary()
    constant = _validate(spec, features.with_columns(pl.lit(3).alias("y")), "features")
    assert _failed(constant) == {("constant_target", "y")}
    assert "every one of the 200 rows has y = 3" in constant.failures[0].detail


def test_string_where_contract_says_numeric_fails_type_check(
    raw: pl.DataFrame, learned: LearnedContract
) -> None:
    assert learned.columns["x1"]["type"] == "numeric"
    bad = raw.with_columns(pl.col("x1").cast(pl.String))
    outcome = _validate(SPEC, bad, "raw_data", learned)
    assert not outcome.success
    assert ("expect_column_values_to_be_in_type_list", "x1") in _failed(outcome)
    failure = next(f for f in outcome.failures if f.column == "x1")
    # A polars column has one type: GX judges the column's dtype, not each of its values.
    assert "observed 'str'" in failure.detail and "float64" in failure.detail


def test_declared_type_is_checked_without_a_learned_contract(raw: pl.DataFrame) -> None:
    spec = spec_from({"validation": {"learn": False, "columns": {"x2": {"type": "numeric"}}}})
    bad = raw.with_columns(pl.col("x2").cast(pl.String))
    outcome = _validate(spec, bad, "raw_data")
    assert ("expect_column_values_to_be_in_type_list", "x2") in _failed(outcome)


def test_out_of_range_values_fail_with_count_and_examples(
    raw: pl.DataFrame, learned: LearnedContract
) -> None:
    features = build_features(SPEC, raw)
    bad = features.with_columns(
        pl.when(pl.col(ROW_ID) < 3).then(1000.0).otherwise(pl.col("x2")).alias("x2")
    )
    outcome = _validate(SPEC, bad, "features", learned)
    assert _failed(outcome) == {("expect_column_values_to_be_between", "x2")}
    failure = outcome.failures[0]
    assert failure.unexpected_count == 3
    assert failure.examples == [1000.0, 1000.0, 1000.0]
    assert "3 of 200 rows (1.50%) unexpected" in failure.detail


def test_learned_range_is_widened_by_the_tolerance(raw: pl.DataFrame) -> None:
    spec = spec_from({"validation": {"range_tolerance": 0.5}})
    contract = learn_contract(spec, raw.schema, build_features(spec, raw))
    lo, hi = raw["x1"].min(), raw["x1"].max()
    assert contract.columns["x1"]["min"] == pytest.approx(lo - 0.5 * (hi - lo))
    assert contract.columns["x1"]["max"] == pytest.approx(hi + 0.5 * (hi - lo))
    # a value just outside the data but inside the widened range passes
    features = build_features(spec, raw).with_columns(
        pl.when(pl.col(ROW_ID) == 0).then(hi + 0.4 * (hi - lo)).otherwise(pl.col("x1")).alias("x1")
    )
    outcome = _validate(spec, features, "features", contract)
    assert outcome.success, outcome.summary()


def test_learned_contract_profiles(raw: pl.DataFrame, learned: LearnedContract) -> None:
    assert learned.rows == 200
    assert learned.raw_columns == ["x1", "x2", "color", "y"]
    assert learned.columns["color"] == {
        "type": "string",
        "allowed": ["blue", "green", "red"],
        "null_rate": 0.0,
    }
    # no range learned for the target
    assert learned.columns["y"] == {"type": "numeric", "null_rate": 0.0}
    assert ROW_ID not in learned.columns
    assert len(learned.learned_from) == 16


def test_new_category_fails_in_set(raw: pl.DataFrame, learned: LearnedContract) -> None:
    features = build_features(SPEC, raw)
    bad = features.with_columns(
        pl.when(pl.col(ROW_ID) == 7)
        .then(pl.lit("purple"))
        .otherwise(pl.col("color"))
        .alias("color")
    )
    outcome = _validate(SPEC, bad, "features", learned)
    assert _failed(outcome) == {("expect_column_values_to_be_in_set", "color")}
    assert outcome.failures[0].examples == ["purple"]
    assert outcome.failures[0].unexpected_count == 1


def test_declared_contract_overrides_learned(raw: pl.DataFrame, learned: LearnedContract) -> None:
    spec = spec_from({"validation": {"columns": {"x1": {"min": 0.0, "nullable": False}}}})
    features = build_features(spec, raw).with_columns(
        pl.when(pl.col(ROW_ID) == 0).then(None).otherwise(pl.col("x1")).alias("x1")
    )
    outcome = _validate(spec, features, "features", learned)
    failed = _failed(outcome)
    assert ("expect_column_values_to_be_between", "x1") in failed
    assert ("expect_column_values_to_not_be_null", "x1") in failed
    between = next(f for f in outcome.failures if f.expectation.endswith("to_be_between"))
    negatives = int((raw["x1"].slice(1) < 0).sum())
    assert between.unexpected_count == negatives


def test_custom_expectation_from_spec_is_applied(raw: pl.DataFrame) -> None:
    spec = spec_from(
        {
            "validation": {
                "expectations": [
                    {"expect_column_values_to_be_between": {"column": "x1", "min_value": 0}},
                    {"expect_column_to_exist": {"column": "color"}},
                ]
            }
        }
    )
    features = build_features(spec, raw)
    plain = _validate(SPEC, features, "features")
    outcome = _validate(spec, features, "features")
    assert outcome.evaluated == plain.evaluated + 2
    assert _failed(outcome) == {("expect_column_values_to_be_between", "x1")}
    assert outcome.failures[0].unexpected_count == int((raw["x1"] < 0).sum())


def test_unknown_custom_expectation_raises(raw: pl.DataFrame) -> None:
    spec = spec_from(
        {"validation": {"expectations": [{"expect_column_values_to_be_pink": {"column": "x1"}}]}}
    )
    with pytest.raises(ValueError) as err:
        build_expectations(spec, "features", build_features(spec, raw), None)
    assert "'expect_column_values_to_be_pink' is not a Great Expectations" in str(err.value)
    assert "validation.expectations" in str(err.value)


def test_custom_expectation_with_bad_arguments_raises(raw: pl.DataFrame) -> None:
    spec = spec_from(
        {"validation": {"expectations": [{"expect_column_values_to_be_between": {"colum": "x1"}}]}}
    )
    with pytest.raises(
        ValueError, match=r"validation.expectations.expect_column_values_to_be_between"
    ):
        build_expectations(spec, "features", build_features(spec, raw), None)


def test_expectation_items_must_be_named_expect(make_spec) -> None:
    with pytest.raises(ValueError, match="must be one GX expectation name"):
        make_spec({"validation": {"expectations": [{"column_values_between": {"column": "x"}}]}})


def test_too_few_rows_fails_row_count(raw: pl.DataFrame) -> None:
    outcome = _validate(SPEC, raw.head(10), "raw_data")
    assert _failed(outcome) == {("expect_table_row_count_to_be_between", None)}
    assert "observed 10" in outcome.failures[0].detail
    assert "table" in outcome.summary()


def test_missing_required_column_fails_raw_stage(raw: pl.DataFrame) -> None:
    spec = spec_from({"categorical": ["region"]})
    outcome = _validate(spec, raw, "raw_data")
    assert ("expect_column_to_exist", "region") in _failed(outcome)


def test_column_missing_against_learned_contract(
    raw: pl.DataFrame, learned: LearnedContract
) -> None:
    outcome = _validate(SPEC, raw.drop("x2"), "raw_data", learned)
    assert ("expect_column_to_exist", "x2") in _failed(outcome)


def test_too_many_duplicates_fail(raw: pl.DataFrame) -> None:
    duplicated = pl.concat([raw.head(100), raw.head(100)])
    outcome = _validate(SPEC, build_features(SPEC, duplicated), "features")
    assert ("duplicate_rows", None) in _failed(outcome)
    (failure,) = [f for f in outcome.failures if f.expectation == "duplicate_rows"]
    assert failure.unexpected_count == 200 and "200 of 200 rows (100.00%) repeat" in failure.detail


def test_learned_contract_save_load_round_trip(tmp_path: Path, learned: LearnedContract) -> None:
    path = tmp_path / "contracts" / "toy.json"
    learned.save(path)
    assert LearnedContract.load(path) == learned
    assert LearnedContract.load(tmp_path / "absent.json") is None


def test_type_family_and_categorical_columns(make_spec) -> None:
    assert type_family(pl.Int32) == "numeric"
    assert type_family(pl.Float64) == "numeric"
    assert type_family(pl.Boolean) == "bool"
    assert type_family(pl.Date) == "datetime"
    assert type_family(pl.String) == "string"
    spec = make_spec({"categorical": ["code"]})
    frame = pl.DataFrame(
        {ROW_ID: [0], "code": [3], "s": ["a"], "b": [True], "x": [1.0], "y": ["yes"]}
    )
    assert categorical_columns(spec, frame) == ["b", "code", "s"]


@pytest.mark.parametrize(("allowed", "passes"), [(0.05, True), (0.01, False)])
def test_duplicate_share_is_judged_on_every_row(
    raw: pl.DataFrame, allowed: float, passes: bool
) -> None:
    """3% of rows repeat another one (1.5% copies plus their originals); a single differing
    column makes a row distinct."""
    spec = spec_from({"validation": {"min_rows": 50, "max_duplicate_fraction": allowed}})
    copies = raw.head(3).with_columns(pl.col("x1") + 0.0)
    distinct = raw.slice(3, 3).with_columns(pl.col("x1") + 1000.0)
    frame = pl.concat([raw.head(194), copies, distinct])
    outcome = _validate(spec, build_features(spec, frame), "features")
    assert (("duplicate_rows", None) not in _failed(outcome)) is passes


def test_validation_keeps_no_intermediates_once_done() -> None:
    """GX caches every metric it resolves (full-length masks, index hashes) on its execution
    engine; at 10M rows that held 2 GiB past the check. None of it may outlive the call."""
    n = 300_000
    rng = np.random.default_rng(0)
    raw = pl.DataFrame(
        {f"x{i}": rng.normal(size=n) for i in range(6)}
        | {"color": rng.choice(["red", "blue", "green"], n), "y": rng.integers(0, 2, n)}
    )
    features = build_features(SPEC, raw)
    contract = learn_contract(SPEC, raw.schema, features)
    _validate(SPEC, features, "features", contract)  # GX imported and warmed up
    gc.collect()
    tracemalloc.start()
    try:
        outcome = _validate(SPEC, features, "features", contract)
        gc.collect()
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.success, outcome.summary()
    column_bytes = n * 8
    assert peak > column_bytes  # the check did look at the data
    assert retained < column_bytes, f"{retained / 2**20:.1f} MiB still held after validation"


def _outside(features: pl.DataFrame, column: str, value: float, rows: int) -> pl.DataFrame:
    return features.with_columns(
        pl.when(pl.col(ROW_ID) < rows).then(value).otherwise(pl.col(column)).alias(column)
    )


def test_a_few_rows_outside_a_learned_range_warn_and_more_block(raw: pl.DataFrame) -> None:
    """Normal data of the same distribution strays past a learned range now and then: within
    validation.learned_range_outside_share it is a warning; a declared bound still blocks."""
    spec = spec_from({"validation": {"learned_range_outside_share": 0.01}})
    features = build_features(spec, raw)
    learned = learn_contract(spec, raw.schema, features)
    beyond = learned.columns["x1"]["max"] + 1.0
    one = _validate(spec, _outside(features, "x1", beyond, 1), "features", learned)
    assert one.success, one.summary()
    assert [(w.expectation, w.column, w.unexpected_count) for w in one.warnings] == [
        ("expect_column_values_to_be_between", "x1", 1)
    ]
    assert "1 within tolerance" in one.summary()
    five = _validate(spec, _outside(features, "x1", beyond, 5), "features", learned)
    assert ("expect_column_values_to_be_between", "x1") in _failed(five)
    declared = spec_from(
        {"validation": {"learned_range_outside_share": 0.01, "columns": {"x1": {"max": 1.0}}}}
    )
    strict = _validate(declared, _outside(features, "x1", 2.0, 1), "features", learned)
    assert ("expect_column_values_to_be_between", "x1") in _failed(strict)


def test_a_jump_in_the_null_rate_blocks(raw: pl.DataFrame, learned: LearnedContract) -> None:
    features = build_features(SPEC, raw)
    assert learned.columns["x2"]["null_rate"] == 0.0
    gappy = features.with_columns(
        pl.when(pl.col(ROW_ID) % 4 == 0).then(None).otherwise(pl.col("x2")).alias("x2")
    )
    outcome = _validate(SPEC, gappy, "features", learned)
    assert _failed(outcome) == {("null_rate", "x2")}
    assert "null in 50 of 200 rows (25.0%); the learned contract saw 0.0%" in (
        outcome.failures[0].detail
    )


def test_infinite_values_are_never_learned_as_bounds(raw: pl.DataFrame) -> None:
    features = build_features(SPEC, raw).with_columns(
        pl.when(pl.col(ROW_ID) == 0).then(float("inf")).otherwise(pl.col("x2")).alias("x2")
    )
    learned = learn_contract(SPEC, raw.schema, features)
    assert np.isfinite([learned.columns["x2"]["min"], learned.columns["x2"]["max"]]).all()
    assert ("infinite_values", "x2") in _failed(_validate(SPEC, features, "features"))


def test_a_larger_run_of_the_same_distribution_passes_the_learned_contract() -> None:
    """The issue's case at a tenth of its size: a contract learned on 20,000 rows holds a run
    of 200,000 rows from the same distributions (heavy tails included)."""
    rng = np.random.default_rng(5)

    def draw(n: int) -> pl.DataFrame:
        x = rng.standard_t(3, n)
        return pl.DataFrame(
            {"x1": x, "x2": rng.lognormal(0, 1, n), "y": (x + rng.normal(size=n) > 0).astype(int)}
        )

    spec = spec_from({"validation": {"min_rows": 50}})
    first = build_features(spec, draw(20_000))
    learned = learn_contract(spec, first.schema, first)
    later = build_features(spec, draw(200_000))
    outcome = _validate(spec, later, "features", learned)
    assert outcome.success, outcome.summary()
    strays = {w.column: w.unexpected_count for w in outcome.warnings}
    assert strays and all(0 < n <= 200 for n in strays.values())  # within 0.1%, reported


def test_the_learned_contract_is_written_atomically_and_a_broken_one_is_named(
    learned: LearnedContract, tmp_path: Path
) -> None:
    from ml_assets.lib.validation import ContractFileError

    path = tmp_path / "data_contract.json"
    learned.save(path)
    assert LearnedContract.load(path) == learned and not list(tmp_path.glob("*.tmp"))
    path.write_text(path.read_text()[:40])  # what a write cut short would leave
    with pytest.raises(ContractFileError, match="data_contract.json is not a readable contract"):
        LearnedContract.load(path)


def test_normal_columns_are_not_mistaken_for_bad_values(raw: pl.DataFrame) -> None:
    """A flag that is one value or null, codes declared categorical, durations and a
    classification target named like polars' own columns all pass the value checks."""
    from ml_assets.lib import value_checks

    n = raw.height
    frame = pl.DataFrame(
        {
            "flag": [1 if i % 3 == 0 else None for i in range(n)],
            "code": [str(250 + i) if i % 4 else f"V{i}" for i in range(n)],
            "wait": [dt.timedelta(minutes=i % 17) for i in range(n)],
            "count": [i % 2 for i in range(n)],
        }
    )
    assert value_checks.target_failures(frame, "count", True, "s") == []
    failures = value_checks.feature_failures(
        frame, ["flag", "code", "wait"], {"code": "categorical"}, {}, 0.1, "s"
    )
    assert failures == [], failures
    undeclared = value_checks.feature_failures(frame, ["code"], {}, {}, 0.1, "s")
    assert [f.expectation for f in undeclared] == ["mixed_types"]


def test_a_declared_min_leaves_the_learned_max_tolerant(raw: pl.DataFrame) -> None:
    spec = spec_from(
        {"validation": {"learned_range_outside_share": 0.01, "columns": {"x1": {"min": -100.0}}}}
    )
    features = build_features(spec, raw)
    learned = learn_contract(spec, raw.schema, features)
    beyond = learned.columns["x1"]["max"] + 1.0
    one = _validate(spec, _outside(features, "x1", beyond, 1), "features", learned)
    assert one.success and [w.column for w in one.warnings] == ["x1"], one.summary()
    below = _validate(spec, _outside(features, "x1", -200.0, 1), "features", learned)
    assert ("expect_column_values_to_be_between", "x1") in _failed(below)
