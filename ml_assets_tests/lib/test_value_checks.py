"""Value checks on single columns: identifiers of every type, NaN read as missing."""

from __future__ import annotations

import numpy as np
import polars as pl

from ml_assets.lib import value_checks
from ml_assets.lib.data import nan_as_null


def _checked(frame: pl.DataFrame, declared: dict[str, str] | None = None) -> list[str]:
    failures = value_checks.feature_failures(frame, frame.columns, declared or {}, {}, 0.1, "s")
    return [f"{f.expectation}:{f.column}" for f in failures]


def test_whole_numbers_numbering_the_rows_are_an_identifier() -> None:
    rng = np.random.default_rng(0)
    n = 500
    frame = pl.DataFrame(
        {
            "row_no": rng.permutation(n) + 10_000,  # ids from a database sequence
            "income": rng.integers(20_000, 200_000, n),  # distinct, but spread over a range
            "age": rng.integers(18, 90, n),
        }
    )
    assert _checked(frame) == ["identifier:row_no"]
    (failure,) = value_checks.feature_failures(frame, ["row_no"], {}, {}, 0.1, "s")
    assert "numbers its 500 rows" in failure.detail and "10000..10499" in failure.detail
    assert "'drop'" in failure.detail
    assert _checked(frame, {"row_no": "numeric"}) == []  # declared a quantity: trusted


def test_a_categorical_column_is_checked_like_text() -> None:
    n = 300
    frame = pl.DataFrame(
        {
            "customer": pl.Series([f"C{i:05d}" for i in range(n)], dtype=pl.Categorical),
            "plan": pl.Series(["basic", "pro", "team"] * (n // 3), dtype=pl.Categorical),
        }
    )
    assert _checked(frame) == ["identifier:customer"]


def test_nan_is_a_missing_value() -> None:
    frame = pl.DataFrame({"x": [1.0, float("nan"), None, 4.0], "n": [1, 2, 3, 4]})
    cleaned = nan_as_null(frame)
    assert cleaned["x"].null_count() == 2 and cleaned["n"].to_list() == [1, 2, 3, 4]
    all_nan = nan_as_null(pl.DataFrame({"z": [float("nan")] * 60, "y": list(range(60))}))
    failures = value_checks.feature_failures(all_nan, ["z"], {}, {}, 0.1, "s")
    assert [f.expectation for f in failures] == ["all_null"]


def test_text_checks_count_rows_whatever_the_column_is_called() -> None:
    """Text is judged on its distinct values with their row counts; a column named like
    the count ('len', 'rows') is judged like any other."""
    for name in ("len", "rows", "value"):
        frame = pl.DataFrame({name: ["1", "2", "x", "3", "2", "y"] * 20})
        (failure,) = value_checks.feature_failures(frame, [name], {}, {}, 0.1, "s")
        assert failure.expectation == "mixed_types"
        assert "mixes 80 numbers with 40 text values, e.g. ['x', 'y']" in failure.detail
