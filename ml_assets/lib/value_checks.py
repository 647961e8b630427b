"""Checks on values that a contract of types and ranges misses, and that would otherwise
train a silently wrong model: empty, constant or infinite columns, identifiers, numbers mixed
with words, dates used as numbers, a constant target, too rare a class, a jump in the null
rate. Plain polars over whole columns; each failure names the column, the count, examples and
the spec field that fixes it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ml_assets.lib.data import ROW_ID
from ml_assets.lib.spec import MLSpec

MIN_CLASS_ROWS = 10  # fewer rows of a class than this cannot be split and evaluated
IDENTIFIER_MIN_ROWS = 50  # below this, many distinct strings say nothing
IDENTIFIER_SHARE = 0.95  # distinct values per row at which a text column is an identifier


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None
    detail: str
    unexpected_count: int | None = None
    examples: list[Any] = field(default_factory=list)


def _examples(values: pl.Series, n: int = 5) -> list[Any]:
    return values.unique(maintain_order=True).head(n).to_list()


def for_spec(
    spec: MLSpec, frame: pl.DataFrame, learned: dict[str, dict[str, Any]]
) -> tuple[list[Failure], int]:
    """Every value check of a spec's features frame (``learned``: the learned contract's
    column profiles); the failures, and how many checks ran."""
    # Dropped columns still here are kept for the fairness report only: never features.
    skip = {ROW_ID, spec.target, spec.time_column, *spec.split.group_columns, *spec.drop}
    features = [c for c in frame.columns if c not in skip and not c.startswith("__")]
    declared = {
        **{c: "categorical" for c in spec.categorical},
        **{n: c.type for n, c in spec.validation.columns.items() if c.type},
    }
    null_rates = {n: p["null_rate"] for n, p in learned.items() if "null_rate" in p}
    found = target_failures(
        frame, spec.target, spec.task == "classification", spec.name
    ) + feature_failures(
        frame, features, declared, null_rates, spec.validation.null_rate_tolerance, spec.name
    )
    return found, 1 + len(features)


def target_failures(
    frame: pl.DataFrame, target: str, classification: bool, spec_name: str
) -> list[Failure]:
    """A constant target, or a class too rare to split and evaluate."""
    if target not in frame.columns:
        return []
    values = frame[target].drop_nulls()
    if values.len() == 0:
        return []  # the not-null expectation says so
    if values.dtype.is_float() and values.is_infinite().any():
        infinite = values.filter(values.is_infinite())
        return [
            Failure(
                "infinite_values",
                target,
                f"spec '{spec_name}': target '{target}' holds {infinite.len()} infinite "
                f"value(s): replace or remove those rows in the source",
                infinite.len(),
                _examples(infinite),
            )
        ]
    if classification:
        counts = values.value_counts(name="__rows").sort("__rows")
        rare = counts.filter(pl.col("__rows") < MIN_CLASS_ROWS)
        if counts.height >= 2 and rare.height:
            shares = ", ".join(f"{v!r}: {c}" for v, c in rare.rows())
            return [
                Failure(
                    "rare_class",
                    target,
                    f"spec '{spec_name}': class(es) {shares} of '{target}' have fewer than "
                    f"{MIN_CLASS_ROWS} rows: too few to split into train, validation and test "
                    "and evaluate; add rows of that class or merge it with another",
                    int(rare["__rows"].sum()),
                    rare[target].to_list(),
                )
            ]
        return []
    if values.n_unique() == 1:
        return [
            Failure(
                "constant_target",
                target,
                f"spec '{spec_name}': every one of the {values.len()} rows has {target} = "
                f"{values[0]!r}: there is nothing to learn; check the source or the 'target' "
                "field",
                values.len(),
                [values[0]],
            )
        ]
    return []


def feature_failures(
    frame: pl.DataFrame,
    features: Iterable[str],
    declared_types: dict[str, str],
    learned_null_rates: dict[str, float],
    null_rate_tolerance: float,
    spec_name: str,
) -> list[Failure]:
    """Every check of one feature column, for each feature."""
    out: list[Failure] = []
    for name in features:
        out += _column_failures(
            frame[name],
            declared_types.get(name),
            learned_null_rates.get(name),
            null_rate_tolerance,
            spec_name,
        )
    return out


def _column_failures(
    column: pl.Series,
    declared_type: str | None,
    learned_null_rate: float | None,
    tolerance: float,
    spec: str,
) -> list[Failure]:
    name, rows = column.name, column.len()
    nulls = column.null_count()
    where = f"spec '{spec}': column '{name}'"
    if rows and nulls == rows:
        return [
            Failure(
                "all_null",
                name,
                f"{where} is null in all {rows} rows: a model would train without it; fix the "
                "source, or add the column to 'drop'",
                rows,
            )
        ]
    out = []
    if learned_null_rate is not None and rows and nulls / rows > learned_null_rate + tolerance:
        out.append(
            Failure(
                "null_rate",
                name,
                f"{where} is null in {nulls} of {rows} rows ({nulls / rows:.1%}); the learned "
                f"contract saw {learned_null_rate:.1%} (validation.null_rate_tolerance allows "
                f"+{tolerance:.0%}): fix the source, raise the tolerance, or delete the learned "
                "contract if the change is intended",
                nulls,
            )
        )
    values = column.drop_nulls()
    dtype = column.dtype
    if dtype.is_float():
        infinite = values.filter(values.is_infinite())
        if infinite.len():
            out.append(
                Failure(
                    "infinite_values",
                    name,
                    f"{where} holds {infinite.len()} infinite value(s) in {rows} rows, e.g. "
                    f"{_examples(infinite)}: replace them in the source (a model cannot learn "
                    "from them, and a range learned from them checks nothing)",
                    infinite.len(),
                    _examples(infinite),
                )
            )
    # One value and no nulls: nothing to learn (with nulls, present vs missing may be the signal).
    if values.len() and values.n_unique() == 1 and nulls == 0:
        out.append(
            Failure(
                "constant",
                name,
                f"{where} has the one value {values[0]!r} in every non-null row: it cannot "
                "inform a model; add it to 'drop'",
                values.len(),
                [values[0]],
            )
        )
        return out
    if isinstance(dtype, pl.Date | pl.Datetime):
        out.append(
            Failure(
                "date_as_feature",
                name,
                f"{where} holds dates ({dtype}), which a model would use as plain numbers and "
                f"not extrapolate past the training period (e.g. {_examples(values, 3)}): name "
                "it in 'time_column', derive what matters from it in 'derive' (e.g. the month), "
                "or add it to 'drop'",
                values.len(),
                _examples(values, 3),
            )
        )
    elif dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        if declared_type not in ("string", "categorical"):
            out += _text_failures(values.cast(pl.String), rows, where)
    elif dtype.is_integer() and declared_type != "numeric":
        out += _row_number_failures(values, rows, where)
    return out


def _row_number_failures(values: pl.Series, rows: int, where: str) -> list[Failure]:
    """Whole numbers, each row its own, filling a range: row numbers or ids, which a model
    would read as a quantity."""
    distinct = values.n_unique()
    if rows < IDENTIFIER_MIN_ROWS or distinct < values.len() or distinct < IDENTIFIER_SHARE * rows:
        return []
    span = int(values.max()) - int(values.min()) + 1  # type: ignore[arg-type]
    if span > distinct / IDENTIFIER_SHARE:
        return []
    name = values.name
    return [
        Failure(
            "identifier",
            name,
            f"{where} numbers its {rows} rows: {distinct} distinct whole numbers filling "
            f"{values.min()}..{values.max()}, e.g. {_examples(values, 3)}: an identifier, not a "
            f"quantity; add it to 'drop' (or declare validation.columns.{name}.type: numeric if "
            "it really is a feature)",
            distinct,
            _examples(values, 3),
        )
    ]


def _text_failures(values: pl.Series, rows: int, where: str) -> list[Failure]:
    """Numbers, dates or identifiers written as text. Judged on the distinct values with their
    row counts (a string column of a million rows often has a few dozen), in the order they
    first appear, so shares and examples are those of the rows."""
    name = values.name
    grouped = (
        values.alias("value")  # a column may itself be named like the count
        .to_frame()
        .group_by("value", maintain_order=True)
        .agg(pl.len().alias("rows"))
    )
    distinct, counts = grouped["value"].alias(name), grouped["rows"]
    numbers = distinct.str.strip_chars().cast(pl.Float64, strict=False)
    numeric = int(counts.filter(numbers.is_not_null()).sum())
    if 0.5 <= numeric / max(values.len(), 1) < 1.0:
        text = distinct.filter(numbers.is_null())
        text_rows = values.len() - numeric
        return [
            Failure(
                "mixed_types",
                name,
                f"{where} mixes {numeric} numbers with {text_rows} text values, e.g. "
                f"{_examples(text)}: it would become a category with a level per number; clean "
                "the text values in the source (empty for missing), or declare "
                f"validation.columns.{name}.type: string if it is a code",
                text_rows,
                _examples(text),
            )
        ]
    try:  # the format is inferred from the first value; text that is no date raises
        dates = distinct.str.strip_chars().str.to_date(strict=False)
    except pl.exceptions.PolarsError:
        dates = pl.Series(name, [None] * distinct.len(), dtype=pl.Date)
    dated = int(counts.filter(dates.is_not_null()).sum())
    if values.len() and dated >= 0.9 * values.len():
        return [
            Failure(
                "date_as_text",
                name,
                f"{where} holds dates written as text, e.g. {_examples(distinct, 3)}: write "
                "them as ISO dates (YYYY-MM-DD) so they are read as dates, and name the column "
                "in 'time_column', derive features from it, or add it to 'drop'",
                values.len(),
                _examples(distinct, 3),
            )
        ]
    if rows >= IDENTIFIER_MIN_ROWS and distinct.len() >= IDENTIFIER_SHARE * rows:
        return [
            Failure(
                "identifier",
                name,
                f"{where} has {distinct.len()} distinct values in {rows} rows, e.g. "
                f"{_examples(distinct, 3)}: an identifier, not a feature (it would become a "
                f"category per row); add it to 'drop' (or declare "
                f"validation.columns.{name}.type: string if it really is a feature)",
                distinct.len(),
                _examples(distinct, 3),
            )
        ]
    return []
