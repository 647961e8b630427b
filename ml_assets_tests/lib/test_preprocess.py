"""preprocess.py: imputation, scaling and category levels learned from training rows only."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from ml_assets.lib import preprocess
from ml_assets.lib.preprocess import Preprocessor


@pytest.fixture
def train() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "age": [20.0, 30.0, None, 40.0, 50.0],
            "visits": [1, 2, 3, 4, 100],
            "plan": ["basic", "gold", "basic", "silver", None],
            "y": [0, 1, 0, 1, 1],
        }
    )


@pytest.fixture
def prep(train: pl.DataFrame) -> Preprocessor:
    return Preprocessor.fit(train, ["age", "visits", "plan"], ["plan"])


def test_fit_learns_statistics_from_train(prep: Preprocessor) -> None:
    assert prep.numeric == ["age", "visits"]
    assert prep.categorical == ["plan"]
    assert prep.features == ["age", "visits", "plan"]
    assert prep.medians == {"age": 35.0, "visits": 3.0}
    assert prep.means["age"] == pytest.approx(35.0)  # nulls filled with the median first
    assert prep.means["visits"] == pytest.approx(22.0)
    assert prep.stds["age"] == pytest.approx(float(np.std([20, 30, 35, 40, 50], ddof=1)))
    assert prep.levels == {"plan": ["basic", "gold", "silver"]}


def test_statistics_do_not_change_when_other_frames_are_transformed(
    prep: Preprocessor, train: pl.DataFrame
) -> None:
    before = (dict(prep.medians), dict(prep.means), dict(prep.stds), dict(prep.levels))
    other = pl.DataFrame(
        {
            "age": [None, 1000.0, 2000.0],
            "visits": [-5, -6, -7],
            "plan": ["platinum", "gold", None],
        }
    )
    prep.codes(other)
    design = prep.design(other)
    assert (prep.medians, prep.means, prep.stds, prep.levels) == before
    # the null age is imputed with the *training* median and scaled with training statistics
    assert design[0, 1] == pytest.approx((35.0 - 35.0) / prep.stds["age"])
    assert design[1, 1] == pytest.approx((1000.0 - 35.0) / prep.stds["age"])
    refit = Preprocessor.fit(other, ["age", "visits", "plan"], ["plan"])
    assert refit.medians != prep.medians  # fitting on other rows would have differed


def test_codes_keep_nan_and_map_categories_to_training_levels(prep: Preprocessor) -> None:
    frame = pl.DataFrame(
        {
            "age": [None, 25.0, 60.0],
            "visits": [7, 8, 9],
            "plan": ["silver", "diamond", None],
        }
    )
    codes = prep.codes(frame)
    assert codes.shape == (3, 3)
    assert codes.dtype == np.float64
    assert math.isnan(codes[0, 0])  # LightGBM handles missing values itself
    assert codes[1:, 0].tolist() == [25.0, 60.0]
    assert codes[:, 1].tolist() == [7.0, 8.0, 9.0]
    assert codes[0, 2] == 2.0  # 'silver' is the third training level
    assert math.isnan(codes[1, 2])  # unseen category
    assert math.isnan(codes[2, 2])  # missing category
    assert codes.flags["C_CONTIGUOUS"]  # row-major: what LightGBM reads without a copy


def test_codes_are_the_same_built_in_blocks(
    prep: Preprocessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    n = 23
    frame = pl.DataFrame(
        {
            "age": np.where(rng.random(n) < 0.2, np.nan, rng.normal(40, 9, n)),
            "visits": rng.integers(0, 9, n),
            "plan": rng.choice(["basic", "gold", "silver", "diamond"], n),
        }
    )
    whole = prep.codes(frame)
    monkeypatch.setattr(preprocess, "CODES_BLOCK_ROWS", 5)  # 4 full blocks and a short one
    np.testing.assert_array_equal(prep.codes(frame), whole)


def test_string_categorical_or_not_codes_are_the_training_level_positions() -> None:
    train = pl.DataFrame(
        {"s": ["b", "a", "c", "a"], "k": [3, 1, 2, 1], "cat": ["x", "y", "x", "y"]},
        schema_overrides={"cat": pl.Categorical},
    )
    prep = Preprocessor.fit(train, ["s", "k", "cat"], ["s", "k", "cat"])
    frame = pl.DataFrame(
        {"s": ["c", "zz", None], "k": [2, 9, None], "cat": ["y", "q", None]},
        schema_overrides={"cat": pl.Categorical},
    )
    codes = prep.codes(frame)
    assert prep.levels == {"s": ["a", "b", "c"], "k": [1, 2, 3], "cat": ["x", "y"]}
    assert codes[0].tolist() == [2.0, 1.0, 1.0]
    assert np.isnan(codes[1:]).all()  # unseen levels and nulls alike


def test_design_has_const_scaled_numerics_and_dummies(prep: Preprocessor) -> None:
    assert prep.design_names() == ["const", "age", "visits", "plan=gold", "plan=silver"]
    frame = pl.DataFrame(
        {"age": [35.0, 45.0], "visits": [22, 22], "plan": ["gold", "basic"]},
    )
    design = prep.design(frame)
    assert design.shape == (2, 5)
    np.testing.assert_array_equal(design[:, 0], [1.0, 1.0])
    assert design[0, 1] == pytest.approx(0.0)
    assert design[1, 1] == pytest.approx(10.0 / prep.stds["age"])
    np.testing.assert_allclose(design[:, 2], [0.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(design[:, 3:], [[1.0, 0.0], [0.0, 0.0]])


def test_unseen_and_missing_categories_are_all_zero_dummies(prep: Preprocessor) -> None:
    frame = pl.DataFrame({"age": [30.0, 30.0], "visits": [1, 1], "plan": ["diamond", None]})
    design = prep.design(frame)
    np.testing.assert_array_equal(design[:, 3:], np.zeros((2, 2)))
    assert not np.isnan(design).any()


def test_training_design_is_standardised(train: pl.DataFrame, prep: Preprocessor) -> None:
    design = prep.design(train)
    assert design[:, 1].mean() == pytest.approx(0.0, abs=1e-12)
    assert design[:, 1].std(ddof=1) == pytest.approx(1.0)


def test_constant_and_all_null_columns_are_safe() -> None:
    train = pl.DataFrame({"flat": [3.0, 3.0, 3.0], "empty": [None, None, None]})
    prep = Preprocessor.fit(train, ["flat", "empty"], [])
    assert prep.stds == {"flat": 1.0, "empty": 1.0}
    assert prep.medians["empty"] == 0.0
    design = prep.design(train)
    np.testing.assert_array_equal(design, np.column_stack([np.ones(3), np.zeros(3), np.zeros(3)]))


def test_no_features_gives_empty_codes() -> None:
    prep = Preprocessor.fit(pl.DataFrame({"y": [1, 2]}), [], [])
    assert prep.codes(pl.DataFrame({"y": [1, 2, 3]})).shape == (3, 0)


@pytest.mark.parametrize(
    ("features", "categorical"), [([], []), (["plan"], ["plan"])], ids=["none", "one_level_cat"]
)
def test_design_has_one_row_per_input_row_even_with_only_the_constant(
    features: list[str], categorical: list[str]
) -> None:
    train = pl.DataFrame({"plan": ["basic", "basic"], "y": [0, 1]})
    prep = Preprocessor.fit(train, features, categorical)
    assert prep.design_names() == ["const"]
    design = prep.design(pl.DataFrame({"plan": ["basic", "gold", None], "y": [1, 2, 3]}))
    np.testing.assert_array_equal(design, np.ones((3, 1)))
