"""Early-stopping rows and cross-validation folds keep apart what the spec's split keeps apart."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from ml_assets.lib import folds
from ml_assets_tests.lib.conftest import spec_from


def _frame(n: int = 900, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "person": rng.integers(0, 120, n),  # ~7 rows per person
            "day": [dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.permutation(n)],
            "x": rng.normal(size=n),
            "y": (rng.random(n) < 0.2).astype(int),
        }
    )


GROUPED = {"split": {"strategy": "random", "group_columns": ["person"]}}
TEMPORAL = {"time_column": "day", "split": {"strategy": "temporal"}}
STRATIFIED = {"split": {"strategy": "stratified"}}


def test_early_stopping_rows_hold_whole_groups() -> None:
    frame = _frame()
    kept, held = folds.holdout(spec_from(GROUPED), frame, 0.15)
    people = frame["person"].to_numpy()
    assert set(people[kept]).isdisjoint(people[held])
    assert len(held) == pytest.approx(0.15 * frame.height, abs=20)
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(frame.height))


def test_early_stopping_rows_of_a_temporal_split_are_the_latest() -> None:
    frame = _frame()
    kept, held = folds.holdout(spec_from(TEMPORAL), frame, 0.15)
    days = frame["day"].to_numpy()
    assert days[kept].max() < days[held].min() and len(held) == 135


def test_early_stopping_rows_keep_the_class_share_when_stratified() -> None:
    frame = _frame()
    kept, held = folds.holdout(spec_from(STRATIFIED), frame, 0.15)
    y = frame["y"].to_numpy()
    assert abs(y[held].mean() - y.mean()) < 0.01 and abs(y[kept].mean() - y.mean()) < 0.01


def test_holdout_is_seeded() -> None:
    frame, spec = _frame(), spec_from(GROUPED)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            folds.holdout(spec, frame, 0.2), folds.holdout(spec, frame, 0.2), strict=True
        )
    )
    other = spec_from({**GROUPED, "split": {**GROUPED["split"], "seed": 7}})
    assert not np.array_equal(
        folds.holdout(other, frame, 0.2)[1], folds.holdout(spec, frame, 0.2)[1]
    )


def _scored_once(parts: list[folds.Fold], n: int) -> bool:
    return np.array_equal(np.sort(np.concatenate([f.score for f in parts])), np.arange(n))


def test_grouped_folds_never_split_a_group() -> None:
    frame = _frame()
    parts = folds.cv_folds(spec_from(GROUPED), frame, 5)
    people = frame["person"].to_numpy()
    assert len(parts) == 5 and _scored_once(parts, frame.height)
    for fold in parts:
        assert set(people[fold.fit]).isdisjoint(people[fold.score])
        assert len(fold.fit) + len(fold.score) == frame.height
    sizes = [len(f.score) for f in parts]
    assert max(sizes) - min(sizes) <= 20  # balanced by rows, whole groups at a time


def test_stratified_folds_keep_the_class_share() -> None:
    frame = _frame()
    parts = folds.cv_folds(spec_from(STRATIFIED), frame, 5)
    y = frame["y"].to_numpy()
    assert _scored_once(parts, frame.height)
    assert all(abs(y[f.score].mean() - y.mean()) < 0.01 for f in parts)


def test_temporal_folds_fit_on_the_past_only_and_grow() -> None:
    frame = _frame()
    parts = folds.cv_folds(spec_from(TEMPORAL), frame, 4)
    days = frame["day"].to_numpy()
    for fold in parts:
        assert days[fold.fit].max() < days[fold.score].min()
    assert [len(f.fit) for f in parts] == sorted(len(f.fit) for f in parts)
    assert len(parts[-1].fit) + len(parts[-1].score) == frame.height  # the last fits on all else


def test_random_folds_partition_the_rows_and_refuse_one_fold() -> None:
    frame = _frame()
    parts = folds.cv_folds(spec_from(), frame, 3)
    assert _scored_once(parts, frame.height) and {len(f.score) for f in parts} == {300}
    with pytest.raises(ValueError, match="at least 2 folds"):
        folds.cv_folds(spec_from(), frame, 1)


def test_too_few_groups_for_the_folds_are_refused() -> None:
    frame = _frame().with_columns((pl.col("person") % 3).alias("person"))
    with pytest.raises(ValueError, match="3 groups of \\['person'\\] cannot fill 5 folds"):
        folds.cv_folds(spec_from(GROUPED), frame, 5)


def test_rows_of_one_time_stay_together_and_the_gap_is_left_out() -> None:
    """As in the temporal split itself: a cut falls between times, and the split's gap is
    left out before the held rows and before every fold's scored rows."""
    frame = _frame().with_columns(
        (pl.col("day").cast(pl.Int64) // 10).alias("week")  # ten rows per time
    )
    spec = spec_from({"time_column": "week", "split": {"strategy": "temporal", "gap": 2}})
    kept, held = folds.holdout(spec, frame, 0.15)
    week = frame["week"].to_numpy()
    assert week[kept].max() < week[held].min() - 2  # two weeks of gap
    assert set(week[held]).isdisjoint(week[kept])
    for fold in folds.cv_folds(spec, frame, 3):
        assert week[fold.fit].max() < week[fold.score].min() - 2
        assert set(week[fold.score]).isdisjoint(week[fold.fit])


def test_a_small_class_still_has_an_early_stopping_row() -> None:
    frame = _frame(200).with_columns((pl.int_range(pl.len()) < 4).cast(pl.Int64).alias("y"))
    kept, held = folds.holdout(spec_from(STRATIFIED), frame, 0.1)
    y = frame["y"].to_numpy()
    assert y[held].sum() == 1 and y[kept].sum() == 3
