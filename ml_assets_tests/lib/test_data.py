"""data.py: loading sources, derived features, fingerprints and binary targets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ml_assets.lib.data import (
    ROW_ID,
    SPLIT,
    DataError,
    binary_target,
    build_features,
    check_columns_present,
    feature_columns,
    fingerprint,
    load_raw,
    load_recent_days,
    positive_class,
    required_source_columns,
)
from ml_assets.lib.spec import MLSpec, SpecError, load_spec


def _spec_at(write_spec, csv_name: str, **extra) -> MLSpec:
    content = {
        "name": "toy",
        "task": "classification",
        "source": {"path": csv_name},
        "target": "y",
        **extra,
    }
    return load_spec(write_spec(content))


def test_load_raw_reads_csv(write_spec, tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("x,day,y\n1.5,2024-01-02,0\n-2.0,2024-01-03,1\n")
    frame = load_raw(_spec_at(write_spec, "rows.csv"))
    assert frame.columns == ["x", "day", "y"]
    assert frame["x"].to_list() == [1.5, -2.0]
    assert frame.schema["day"] == pl.Date
    assert frame["y"].to_list() == [0, 1]


def test_load_raw_reads_parquet(write_spec, tmp_path: Path) -> None:
    pl.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]}).write_parquet(tmp_path / "rows.parquet")
    frame = load_raw(_spec_at(write_spec, "rows.parquet"))
    assert frame.shape == (3, 2)
    assert frame["x"].to_list() == [1, 2, 3]


def test_load_raw_statsmodels_dataset() -> None:
    spec = MLSpec.model_validate(
        {"name": "fair", "task": "classification", "source": {"statsmodels": "fair"}, "target": "y"}
    )
    frame = load_raw(spec)
    assert frame.height == 6366
    assert {"affairs", "rate_marriage", "age"} <= set(frame.columns)


@pytest.mark.parametrize("content", ["", "x,y\n"], ids=["empty_file", "header_only"])
def test_load_raw_empty_csv_names_the_file(write_spec, tmp_path: Path, content: str) -> None:
    (tmp_path / "empty.csv").write_text(content)
    spec = _spec_at(write_spec, "empty.csv")
    with pytest.raises(DataError) as err:
        load_raw(spec)
    message = str(err.value)
    assert str(tmp_path / "empty.csv") in message
    assert "is empty" in message
    assert "spec 'toy'" in message


def test_load_raw_file_removed_after_spec_load(write_spec, tmp_path: Path) -> None:
    (tmp_path / "gone.csv").write_text("x,y\n1,0\n")
    spec = _spec_at(write_spec, "gone.csv")
    (tmp_path / "gone.csv").unlink()
    with pytest.raises(DataError, match=r"source file .*gone.csv does not exist"):
        load_raw(spec)


def test_load_raw_unreadable_parquet(write_spec, tmp_path: Path) -> None:
    (tmp_path / "broken.parquet").write_bytes(b"this is not parquet")
    spec = _spec_at(write_spec, "broken.parquet")
    with pytest.raises(DataError, match=r"cannot read source file .*broken.parquet"):
        load_raw(spec)


def test_missing_target_lists_available_columns(make_spec) -> None:
    spec = make_spec({"target": "label"})
    raw = pl.DataFrame({"x1": [1.0, 2.0], "color": ["a", "b"]})
    with pytest.raises(DataError) as err:
        build_features(spec, raw)
    message = str(err.value)
    assert "target column 'label'" in message
    assert "['x1', 'color']" in message


def test_check_columns_present_lists_missing_and_available(make_spec) -> None:
    spec = make_spec({"categorical": ["region"], "evaluation": {"segment_columns": ["age"]}})
    raw = pl.DataFrame({"y": [0, 1], "region": ["n", "s"]})
    with pytest.raises(DataError) as err:
        check_columns_present(spec, raw)
    assert "['age']" in str(err.value)
    assert "available columns: ['y', 'region']" in str(err.value)
    check_columns_present(spec, raw.with_columns(age=pl.lit(30)))  # nothing missing: no error


def test_required_source_columns_excludes_derived(make_spec) -> None:
    spec = make_spec(
        {
            "target": "label",
            "derive": {"label": "CAST(x1 > 0 AS INT)"},
            "drop": ["leak"],
            "categorical": ["color"],
            "time_column": "day",
            "split": {"strategy": "random"},
        }
    )
    assert required_source_columns(spec) == ["color", "day", "leak"]


def test_derive_with_polars_sql(make_spec) -> None:
    spec = make_spec(
        {
            "target": "positive",
            "derive": {"positive": "CAST(x > 0 AS INT)", "x_sq": "x * x"},
        }
    )
    raw = pl.DataFrame({"x": [-1.5, 0.0, 2.0, 3.0]})
    features = build_features(spec, raw)
    assert features["positive"].to_list() == [0, 0, 1, 1]
    assert features["x_sq"].to_list() == [2.25, 0.0, 4.0, 9.0]


def test_derive_can_use_earlier_derived_columns(make_spec) -> None:
    spec = make_spec(
        {"target": "big", "derive": {"double": "x * 2", "big": "CAST(double > 3 AS INT)"}}
    )
    features = build_features(spec, pl.DataFrame({"x": [1, 2, 3]}))
    assert features["big"].to_list() == [0, 1, 1]


@pytest.mark.parametrize(
    ("expression", "hint"),
    [("CAST(nope > 0 AS INT)", "nope"), ("x >>> 3", "x >>> 3"), ("no_such_fn(x)", "no_such_fn")],
)
def test_bad_derive_expression_names_the_field(make_spec, expression, hint) -> None:
    spec = make_spec({"target": "y", "derive": {"flag": expression}})
    raw = pl.DataFrame({"x": [1.0, -1.0], "y": [0, 1]})
    with pytest.raises(DataError) as err:
        build_features(spec, raw)
    message = str(err.value)
    assert "field 'derive.flag'" in message
    assert repr(expression) in message
    assert hint in message


def test_drop_removes_columns_and_row_id_is_added(make_spec) -> None:
    spec = make_spec({"drop": ["leak", "not_there"]})
    raw = pl.DataFrame({"x": [3.0, 1.0, 2.0], "leak": [1, 0, 1], "y": [1, 0, 1]})
    features = build_features(spec, raw)
    assert features.columns == [ROW_ID, "x", "y"]
    assert features[ROW_ID].to_list() == [0, 1, 2]
    assert features["x"].to_list() == [3.0, 1.0, 2.0]


def test_feature_columns_exclude_target_ids_split_and_time(make_spec) -> None:
    spec = make_spec({"time_column": "day", "split": {"strategy": "random"}})
    frame = pl.DataFrame(
        {ROW_ID: [0], "day": [1], "x1": [0.5], "color": ["a"], "y": [1], SPLIT: ["train"]}
    )
    assert feature_columns(spec, frame) == ["x1", "color"]


def test_fingerprint_identical_for_identical_frames() -> None:
    a = pl.DataFrame({"x": [1.0, 2.0, 3.0], "s": ["a", "b", None]})
    b = pl.DataFrame({"x": [1.0, 2.0, 3.0], "s": ["a", "b", None]})
    assert fingerprint(a) == fingerprint(b)
    assert len(fingerprint(a)) == 16


def test_fingerprint_changes_with_one_value_order_or_schema() -> None:
    base = pl.DataFrame({"x": [1.0, 2.0, 3.0], "s": ["a", "b", "c"]})
    one_value = base.with_columns(pl.when(pl.col("x") == 2.0).then(2.5).otherwise(pl.col("x")))
    reordered = base.reverse()
    renamed = base.rename({"s": "t"})
    prints = {fingerprint(f) for f in (base, one_value, reordered, renamed)}
    assert len(prints) == 4


def test_fingerprint_ignores_chunking_and_counts_rows() -> None:
    whole = pl.DataFrame({"x": list(range(10)), "s": [str(i) for i in range(10)]})
    chunked = pl.concat([whole.head(4), whole.tail(6)], rechunk=False)
    assert chunked.n_chunks() == 2
    assert fingerprint(chunked) == fingerprint(whole)
    assert fingerprint(whole.head(9)) != fingerprint(whole)


def test_fingerprint_ignores_what_lies_under_null_slots() -> None:
    """Equal frames whose nulls were made differently (Arrow keeps the old bytes under a null
    slot) get one fingerprint; moving a null does change it."""
    direct = pl.DataFrame({"x": [1.0, None, 3.0], "s": ["a", None, "c"]})
    masked = pl.DataFrame({"x": [1.0, 2.0, 3.0], "s": ["a", "a long string of 24 bytes", "c"]})
    masked = masked.with_columns(
        pl.when(pl.col("x") == 2.0).then(None).otherwise(pl.col(c)).alias(c) for c in ("x", "s")
    )
    assert masked.equals(direct)
    assert fingerprint(masked) == fingerprint(direct)
    moved = pl.DataFrame({"x": [None, 1.0, 3.0], "s": ["a", None, "c"]})
    assert fingerprint(moved) != fingerprint(direct)


def test_fingerprint_of_masked_rows_equals_that_of_the_filtered_frame() -> None:
    frame = pl.DataFrame({"x": [1.0, None, 3.0, 4.0], "s": ["a", "b", None, "d"]})
    for keep in ([True, False, True, True], [False, False, False, False], [True] * 4):
        mask = pl.Series(keep)
        assert fingerprint(frame, mask) == fingerprint(frame.filter(mask))


def test_fingerprint_of_empty_frames_depends_on_schema() -> None:
    assert fingerprint(pl.DataFrame({"x": []}, schema={"x": pl.Int64})) != fingerprint(
        pl.DataFrame({"x": []}, schema={"x": pl.Float64})
    )


def test_positive_class_is_the_larger_value() -> None:
    assert positive_class(pl.Series("y", [0, 1, 1, None, 0])) == 1
    assert positive_class(pl.Series("y", ["no", "yes", "no"])) == "yes"
    assert positive_class(pl.Series("y", [False, True])) is True


@pytest.mark.parametrize(("values", "count"), [([1, 1, 1], 1), ([0, 1, 2], 3), ([None, None], 0)])
def test_positive_class_needs_exactly_two_values(values, count) -> None:
    with pytest.raises(DataError) as err:
        positive_class(pl.Series("target", values, dtype=pl.Int64))
    assert f"target 'target' has {count} distinct value(s)" in str(err.value)
    assert "needs exactly 2" in str(err.value)


def test_binary_target_encodes_positive_as_one() -> None:
    labels = binary_target(pl.Series("y", ["yes", "no", "yes"]), "yes")
    np.testing.assert_array_equal(labels, np.array([1, 0, 1]))


def _monitored_spec(days: int = 3) -> MLSpec:
    return MLSpec.model_validate(
        {
            "name": "stream",
            "task": "classification",
            "target": "y",
            "source": {"recent_days": days},
            "time_column": "day",
            "monitoring": {"start_date": "2026-01-01"},
        }
    )


def _write_days(directory: Path, days: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i, day in enumerate(days):
        pl.DataFrame(
            {"day": [dt.date.fromisoformat(day)] * 2, "x": [i, i], "y": [0, 1]}
        ).write_parquet(directory / f"{day}.parquet")


def test_recent_days_window_ends_at_the_newest_file_or_the_given_day(tmp_path: Path) -> None:
    days = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05"]
    _write_days(tmp_path, days)
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "2026-01-06.parquet.tmp").write_text("a write in progress is ignored")
    frame, window = load_recent_days(_monitored_spec(3), tmp_path, None)
    assert (window.start, window.end) == (dt.date(2026, 1, 3), dt.date(2026, 1, 5))
    assert frame["x"].to_list() == [2, 2, 3, 3, 4, 4]  # day order
    frame, window = load_recent_days(_monitored_spec(3), tmp_path, dt.date(2026, 1, 2))
    assert frame["x"].unique().sort().to_list() == [0, 1]
    assert window.missing == [dt.date(2025, 12, 31)]


def test_recent_days_reports_missing_days_and_refuses_an_empty_window(tmp_path: Path) -> None:
    _write_days(tmp_path, ["2026-01-01", "2026-01-04"])
    _, window = load_recent_days(_monitored_spec(4), tmp_path, None)
    assert window.loaded == [dt.date(2026, 1, 1), dt.date(2026, 1, 4)]
    assert window.missing == [dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
    with pytest.raises(DataError, match=r"no daily file .* between 2026-02-08 and 2026-02-10"):
        load_recent_days(_monitored_spec(3), tmp_path, dt.date(2026, 2, 10))
    with pytest.raises(DataError, match=r"found no daily files <YYYY-MM-DD>.parquet in .*nowhere"):
        load_recent_days(_monitored_spec(3), tmp_path / "nowhere", None)


def test_recent_days_refuses_a_day_with_other_columns(tmp_path: Path) -> None:
    _write_days(tmp_path, ["2026-01-01", "2026-01-02"])
    pl.DataFrame({"day": [dt.date(2026, 1, 3)], "z": [1.0], "y": [1]}).write_parquet(
        tmp_path / "2026-01-03.parquet"
    )
    with pytest.raises(DataError, match=r"2026-01-03.parquet has columns .* same columns"):
        load_recent_days(_monitored_spec(3), tmp_path, None)


def test_recent_days_accepts_an_all_null_day_and_names_unreadable_or_empty_files(
    tmp_path: Path,
) -> None:
    _write_days(tmp_path, ["2026-01-01", "2026-01-02"])
    pl.DataFrame(
        {"day": [dt.date(2026, 1, 3)], "x": pl.Series([None], dtype=pl.Null), "y": [1]}
    ).write_parquet(tmp_path / "2026-01-03.parquet")
    frame, _ = load_recent_days(_monitored_spec(3), tmp_path, None)
    assert frame["x"].null_count() == 1 and frame.height == 5
    (tmp_path / "2026-01-04.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(DataError, match=r"cannot read daily file .*2026-01-04.parquet"):
        load_recent_days(_monitored_spec(3), tmp_path, None)
    empty = tmp_path / "empty"
    _write_days(empty, ["2026-01-01"])
    pl.read_parquet(empty / "2026-01-01.parquet").head(0).write_parquet(
        empty / "2026-01-01.parquet"
    )
    with pytest.raises(DataError, match=r"2025-12-30..2026-01-01 in .* hold no rows"):
        load_recent_days(_monitored_spec(3), empty, None)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_source_url_is_read_through_its_filesystem(write_spec, suffix: str) -> None:
    """source.path may be an fsspec URL (s3://, gs://, ...): here fsspec's memory filesystem."""
    from upath import UPath

    url = f"memory://team-bucket/raw/rows_{suffix}.{suffix}"
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    with UPath(url).open("wb") as fh:
        frame.write_csv(fh) if suffix == "csv" else frame.write_parquet(fh)
    spec = load_spec(
        write_spec(
            {"name": "toy", "task": "classification", "source": {"path": url}, "target": "y"}
        )
    )
    assert str(spec.source_file) == url
    assert load_raw(spec).equals(frame)
    missing = url.replace("rows_", "gone_")
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(
            write_spec(
                {
                    "name": "toy",
                    "task": "classification",
                    "source": {"path": missing},
                    "target": "y",
                }
            )
        )
