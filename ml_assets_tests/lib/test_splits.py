"""splits.py: stratified, random and temporal splits and the checks that prove them sound."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from ml_assets.lib.data import ROW_ID, SPLIT, DataError
from ml_assets.lib.splits import (
    SPLIT_NAMES,
    assign_splits,
    check_disjoint,
    check_proportions,
    check_time_order,
)
from ml_assets_tests.lib.conftest import spec_from


def _features(n: int, positive_share: float = 0.3, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    y[: int(round(n * positive_share))] = 1
    rng.shuffle(y)
    return pl.DataFrame({"x": rng.normal(size=n), "y": y}).with_row_index(ROW_ID)


def _rows(splits: pl.DataFrame, name: str) -> pl.DataFrame:
    return splits.filter(pl.col(SPLIT) == name)


def _temporal_features(n: int = 100, dates: bool = False) -> pl.DataFrame:
    # Rows arrive out of time order, as they would in a real file.
    order = np.random.default_rng(5).permutation(n)
    t = (
        [dt.date(2024, 1, 1) + dt.timedelta(days=int(i)) for i in order]
        if dates
        else order.tolist()
    )
    return pl.DataFrame({"t": t, "x": order * 1.0, "y": order % 7}).with_row_index(ROW_ID)


def _temporal_spec(**split):
    return spec_from({"time_column": "t", "split": split}, task="regression")


def test_stratified_keeps_class_shares_and_sizes() -> None:
    spec = spec_from({"split": {"validation_fraction": 0.2, "test_fraction": 0.25}})
    features = _features(400, positive_share=0.3)
    splits = assign_splits(spec, features)
    assert spec.split_strategy == "stratified"
    assert splits.height == 400
    assert splits[ROW_ID].to_list() == features[ROW_ID].to_list()  # order and rows kept
    sizes = {s: _rows(splits, s).height for s in SPLIT_NAMES}
    assert sizes == {"train": 220, "validation": 80, "test": 100}
    for name in SPLIT_NAMES:
        share = _rows(splits, name)["y"].mean()
        assert abs(share - 0.3) <= 0.02, (name, share)


def test_stratified_with_rare_class_keeps_positives_in_every_split() -> None:
    spec = spec_from()
    splits = assign_splits(spec, _features(250, positive_share=0.08))
    for name in SPLIT_NAMES:
        part = _rows(splits, name)
        assert part["y"].sum() > 0
        assert abs(part["y"].mean() - 0.08) <= 0.02


def test_random_split_sizes() -> None:
    spec = spec_from({"split": {"validation_fraction": 0.1, "test_fraction": 0.3}}, "regression")
    splits = assign_splits(spec, _features(200))
    assert spec.split_strategy == "random"
    assert {s: _rows(splits, s).height for s in SPLIT_NAMES} == {
        "train": 120,
        "validation": 20,
        "test": 60,
    }


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_all_checks_pass_on_a_good_split(task: str) -> None:
    spec = spec_from(task=task)
    splits = assign_splits(spec, _features(300))
    disjoint = check_disjoint(splits)
    proportions = check_proportions(spec, splits)
    order = check_time_order(spec, splits)
    assert (disjoint.passed, proportions.passed, order.passed) == (True, True, True)
    assert disjoint.detail == "no row is in two splits"
    assert proportions.detail == "proportions as configured"
    assert proportions.metadata["train_rows"] == 180
    assert proportions.metadata["test_fraction"] == pytest.approx(0.2)
    assert order.detail == "not a temporal split"
    if task == "classification":
        assert proportions.metadata["test_positive_share"] == pytest.approx(0.3, abs=0.02)


def test_check_disjoint_fails_when_a_row_is_in_two_splits() -> None:
    splits = assign_splits(spec_from(), _features(100))
    leaked = _rows(splits, "train").head(1).with_columns(pl.lit("test").alias(SPLIT))
    check = check_disjoint(pl.concat([splits, leaked]))
    assert not check.passed
    assert check.metadata == {"rows_in_two_splits": 1, "repeated_row_ids": 1}
    assert check.detail.startswith("1 row ids appear in more than one split")


def test_check_disjoint_fails_on_a_duplicated_row_id_within_a_split() -> None:
    splits = assign_splits(spec_from(), _features(100))
    check = check_disjoint(pl.concat([splits, _rows(splits, "test").head(1)]))
    assert not check.passed
    # the detail must explain the failure, not claim that nothing is wrong
    assert check.detail != "0 row ids appear in more than one split"


def test_check_proportions_fails_when_fractions_are_off() -> None:
    spec = spec_from(task="regression")
    splits = assign_splits(spec, _features(200))
    # move 30 test rows into train: test 0.05 instead of 0.2
    test_ids = _rows(splits, "test")[ROW_ID].head(30)
    moved = splits.with_columns(
        pl.when(pl.col(ROW_ID).is_in(test_ids.implode()))
        .then(pl.lit("train"))
        .otherwise(pl.col(SPLIT))
        .alias(SPLIT)
    )
    check = check_proportions(spec, moved)
    assert not check.passed
    assert "test: 0.050 vs configured 0.200" in check.detail
    assert "train: 0.750 vs configured 0.600" in check.detail
    assert check.metadata["test_rows"] == 10


def test_check_proportions_fails_when_a_split_is_empty() -> None:
    spec = spec_from(task="regression")
    splits = assign_splits(spec, _features(200)).filter(pl.col(SPLIT) != "validation")
    check = check_proportions(spec, splits)
    assert not check.passed
    assert "validation: 0.000" in check.detail


def test_check_proportions_fails_when_class_share_is_off() -> None:
    spec = spec_from()
    splits = assign_splits(spec, _features(400, positive_share=0.3))
    # relabel 10 negative test rows as positive: test share rises by 0.125
    ids = _rows(splits, "test").filter(pl.col("y") == 0)[ROW_ID].head(10)
    skewed = splits.with_columns(
        pl.when(pl.col(ROW_ID).is_in(ids.implode())).then(1).otherwise(pl.col("y")).alias("y")
    )
    check = check_proportions(spec, skewed)
    assert not check.passed
    assert "test: positive share" in check.detail


def test_same_seed_same_split_other_seed_other_split() -> None:
    features = _features(300)
    first = assign_splits(spec_from({"split": {"seed": 7}}), features)
    again = assign_splits(spec_from({"split": {"seed": 7}}), features)
    other = assign_splits(spec_from({"split": {"seed": 8}}), features)
    assert first[SPLIT].to_list() == again[SPLIT].to_list()
    assert first[SPLIT].to_list() != other[SPLIT].to_list()


def test_temporal_split_orders_train_validation_test() -> None:
    spec = _temporal_spec()
    features = _temporal_features(100)
    splits = assign_splits(spec, features)
    assert spec.split_strategy == "temporal"
    assert splits.height == 100
    assert splits[ROW_ID].to_list() == sorted(splits[ROW_ID].to_list())
    train, val, test = (_rows(splits, s)["t"] for s in SPLIT_NAMES)
    assert (train.len(), val.len(), test.len()) == (60, 20, 20)
    assert train.max() < val.min()
    assert val.max() < test.min()
    check = check_time_order(spec, splits)
    assert check.passed
    assert check.metadata["validation_start"] == "60"
    assert check.metadata["test_end"] == "99"
    assert check_proportions(spec, splits).passed
    assert check_disjoint(splits).passed


def test_temporal_split_keeps_equal_times_together() -> None:
    spec = _temporal_spec()
    features = pl.DataFrame({"t": np.repeat(np.arange(20), 5), "y": np.arange(100)})
    splits = assign_splits(spec, features.with_row_index(ROW_ID))
    by_time = splits.group_by("t").agg(pl.col(SPLIT).n_unique().alias("n"))
    assert by_time["n"].max() == 1
    assert check_time_order(spec, splits).passed


def test_proportions_allow_for_whole_days_but_not_more() -> None:
    # 14 daily snapshots of 100 rows: 60% cannot be cut exactly (8 days = 57%).
    spec = _temporal_spec()
    features = pl.DataFrame({"t": np.repeat(np.arange(14), 100), "y": np.arange(1400)})
    splits = assign_splits(spec, features.with_row_index(ROW_ID))
    assert _rows(splits, "train").height == 800
    assert check_proportions(spec, splits).passed
    lopsided = splits.with_columns(
        pl.when(pl.col("t") < 4).then(pl.lit("train")).otherwise(pl.col(SPLIT)).alias(SPLIT)
    ).with_columns(
        pl.when(pl.col("t").is_between(4, 10))
        .then(pl.lit("validation"))
        .otherwise(pl.col(SPLIT))
        .alias(SPLIT)
    )
    result = check_proportions(spec, lopsided)
    assert not result.passed and "validation" in result.detail


def test_temporal_numeric_gap_leaves_rows_out() -> None:
    spec = _temporal_spec(gap=5)
    splits = assign_splits(spec, _temporal_features(100))
    train, val, test = (_rows(splits, s)["t"] for s in SPLIT_NAMES)
    assert splits.height == 90  # times 55..59 and 75..79 fall in the gaps
    assert train.max() == 54 and val.min() == 60
    assert val.max() == 74 and test.min() == 80
    assert val.min() - train.max() > 5
    assert test.min() - val.max() > 5
    assert check_time_order(spec, splits).passed
    assert check_proportions(spec, splits).passed


def test_temporal_duration_gap_on_date_column() -> None:
    spec = _temporal_spec(gap="7d")
    splits = assign_splits(spec, _temporal_features(100, dates=True))
    train, val, test = (_rows(splits, s)["t"] for s in SPLIT_NAMES)
    assert splits.height == 86
    assert val.min() - train.max() > dt.timedelta(days=7)
    assert test.min() - val.max() > dt.timedelta(days=7)
    assert val.min() == dt.date(2024, 3, 1)  # day 60
    assert test.min() == dt.date(2024, 3, 21)  # day 80
    assert check_time_order(spec, splits).passed


def test_temporal_split_rejects_null_times() -> None:
    spec = _temporal_spec()
    features = _temporal_features(50).with_columns(
        pl.when(pl.col(ROW_ID) == 3).then(None).otherwise(pl.col("t")).alias("t")
    )
    with pytest.raises(DataError, match="time column 't' has 1 null"):
        assign_splits(spec, features)


def test_check_time_order_fails_on_overlapping_times() -> None:
    spec = _temporal_spec()
    splits = assign_splits(spec, _temporal_features(100))
    # one train row gets a time inside the test period
    overlapping = splits.with_columns(
        pl.when((pl.col(SPLIT) == "train") & (pl.col("t") == 0))
        .then(95)
        .otherwise(pl.col("t"))
        .alias("t")
    )
    check = check_time_order(spec, overlapping)
    assert not check.passed
    assert check.detail.startswith("time ranges overlap")
    assert check.metadata["train_end"] == "95"


def test_check_time_order_fails_on_an_empty_split() -> None:
    spec = _temporal_spec()
    splits = assign_splits(spec, _temporal_features(100)).filter(pl.col(SPLIT) != "test")
    check = check_time_order(spec, splits)
    assert not check.passed
    assert check.detail == "empty split(s): ['test']"


def test_temporal_split_is_deterministic() -> None:
    spec = _temporal_spec(gap=3)
    features = _temporal_features(80)
    assert assign_splits(spec, features).equals(assign_splits(spec, features))
