"""Raw data loading, feature derivation and content fingerprints."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ml_assets.lib.cores import available_threads
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.storage import is_local

ROW_ID = "__row_id"
SPLIT = "__split"
DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.parquet$")


class DataError(ValueError):
    """Input data that cannot be used, with what is wrong, where, and how to fix it."""


def load_raw(spec: MLSpec) -> pl.DataFrame:
    """The source data as-is, as a polars frame. Raises DataError on missing/empty/unreadable."""
    if spec.source.statsmodels:
        module = importlib.import_module(f"statsmodels.datasets.{spec.source.statsmodels}")
        pdf = module.load_pandas().data
        if type(pdf.index).__name__ != "RangeIndex":  # e.g. co2's weekly DatetimeIndex
            pdf = pdf.reset_index(names=pdf.index.name or "date")
        frame = pl.from_pandas(pdf)
        where = f"statsmodels dataset '{spec.source.statsmodels}'"
    else:
        path = spec.source_file
        assert path is not None
        frame = _read_file(spec, path)
        where = str(path)
    if frame.height == 0 or frame.width == 0:
        raise DataError(
            f"spec '{spec.name}': source {where} is empty ({frame.height} rows, "
            f"{frame.width} columns); point 'source' at a file with data"
        )
    return frame


def _refuse_duplicated_headers(spec: MLSpec, path: Path, columns: list[str]) -> None:
    """polars renames a repeated CSV header to '<name>_duplicated_<n>'; which of the two
    columns is meant cannot be known, so the file is refused."""
    repeated = sorted(
        {m.group(1) for c in columns if (m := re.fullmatch(r"(.+)_duplicated_\d+", c))}
        & set(columns)
    )
    if repeated:
        raise DataError(
            f"spec '{spec.name}': source file {path} repeats the column header(s) {repeated}: "
            "give each column its own name in the file's first line"
        )


def _read_file(spec: MLSpec, path: Path) -> pl.DataFrame:
    if not path.exists():
        raise DataError(f"spec '{spec.name}': source file {path} does not exist")
    try:
        if not is_local(path):  # s3://, gs://, ...
            with path.open("rb") as fh:
                data: Path | bytes = fh.read()
        else:
            data = path
        if path.suffix.lower() == ".csv":
            frame = pl.read_csv(data, infer_schema_length=10_000, try_parse_dates=True)
            _refuse_duplicated_headers(spec, path, frame.columns)
            return frame
        return pl.read_parquet(data)
    except pl.exceptions.NoDataError:
        return pl.DataFrame()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"spec '{spec.name}': cannot read source file {path}: {exc}") from exc


@dataclass(frozen=True)
class DayWindow:
    """The calendar days a ``recent_days`` source covers, and which of them had a file."""

    start: dt.date
    end: dt.date
    loaded: list[dt.date]
    missing: list[dt.date]


def day_files(directory: Path) -> dict[dt.date, Path]:
    """``<YYYY-MM-DD>.parquet`` files in ``directory`` by day (other names are ignored)."""
    if not directory.exists():
        return {}
    found = {}
    for path in directory.iterdir():
        match = DAY_FILE.match(path.name)
        if match:
            try:
                found[dt.date.fromisoformat(match.group(1))] = path
            except ValueError:  # e.g. 2024-13-01: not a day, so not a daily file
                continue
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class ScoringPlan:
    """Which daily files to score now, oldest first, and what the others wait for."""

    due: list[dt.date]
    ahead: list[dt.date]  # files dated after today: their partition does not exist yet
    newest: dt.date | None  # the newest day with a file, up to today


def days_to_score(
    arrived: dict[dt.date, float],
    scored_at: dict[dt.date, float],
    start: dt.date,
    today: dt.date,
    lookback: int,
) -> ScoringPlan:
    """Days among the ``lookback`` newest (up to the newest file) whose file has arrived
    (``arrived``: day -> file time) and was not scored since (``scored_at``: day -> time of the
    latest scoring): a file replaced after scoring, e.g. once labels are known, is due again."""
    present = sorted(d for d in arrived if start <= d <= today)
    newest = present[-1] if present else None
    window = [d for d in present if newest is not None and (newest - d).days < lookback]
    due = [d for d in window if d not in scored_at or arrived[d] > scored_at[d]]
    return ScoringPlan(due, sorted(d for d in arrived if d > today), newest)


def recent_window(
    spec: MLSpec, available: list[dt.date], end: dt.date | None, where: str
) -> DayWindow:
    """The last ``source.recent_days`` calendar days up to ``end`` (default: newest file)."""
    days = spec.source.recent_days
    assert days is not None
    if not available:
        raise DataError(
            f"spec '{spec.name}': source 'recent_days' found no daily files "
            f"<YYYY-MM-DD>.parquet in {where}; put the stream's files there first"
        )
    end = end or available[-1]
    start = end - dt.timedelta(days=days - 1)
    loaded = [d for d in available if start <= d <= end]
    if not loaded:
        raise DataError(
            f"spec '{spec.name}': no daily file in {where} between {start} and {end} "
            f"(files cover {available[0]} to {available[-1]}); choose a window end inside that "
            "range (run tag ml_assets/window_end) or add the missing days"
        )
    present = set(loaded)
    every = [start + dt.timedelta(days=i) for i in range(days)]
    return DayWindow(start, end, loaded, [d for d in every if d not in present])


def load_recent_days(
    spec: MLSpec, directory: Path, end: dt.date | None
) -> tuple[pl.DataFrame, DayWindow]:
    """The rows of every daily file in the window, in day order; schemas must agree."""
    files = day_files(directory)
    window = recent_window(spec, list(files), end, str(directory))
    frames = []
    for day in window.loaded:
        frames.append(read_day_file(spec, files[day]))
        if frames[-1].columns != frames[0].columns:
            raise DataError(
                f"spec '{spec.name}': daily file {files[day]} has columns {frames[-1].columns}, "
                f"but {files[window.loaded[0]]} has {frames[0].columns}; every day of the "
                "window needs the same columns"
            )
    # Relaxed: a day whose column is all null (type Null) joins the others' type; real type
    # conflicts are left to the raw_data contract, which names the column.
    frame = pl.concat(frames, how="vertical_relaxed")
    if frame.height == 0:
        raise DataError(
            f"spec '{spec.name}': the daily files of {window.start}..{window.end} in {directory} "
            "hold no rows"
        )
    return frame, window


def read_day_file(spec: MLSpec, path: Path) -> pl.DataFrame:
    """One daily parquet file; an unreadable one is named in the error."""
    try:
        with path.open("rb") as fh:
            return pl.read_parquet(fh)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(
            f"spec '{spec.name}': cannot read daily file {path}: {exc}. Replace the file "
            "(it may be truncated or still being written) and re-run"
        ) from exc


def required_source_columns(spec: MLSpec) -> list[str]:
    """Columns the spec itself refers to and that must come from the source."""
    derived = set(spec.derive)
    named = [spec.target, *spec.drop, *spec.categorical, *spec.evaluation.segment_columns]
    named += spec.fairness.columns if spec.fairness else []
    if spec.time_column:
        named.append(spec.time_column)
    return sorted({c for c in named if c not in derived})


def check_columns_present(spec: MLSpec, frame: pl.DataFrame) -> None:
    missing = [c for c in required_source_columns(spec) if c not in frame.columns]
    if missing:
        raise DataError(
            f"spec '{spec.name}': column(s) {missing} named in the spec are not in the source "
            f"data; available columns: {frame.columns}. Fix the spec or the data."
        )


def derive_inputs(spec: MLSpec, rows: pl.DataFrame) -> pl.DataFrame:
    """New rows to score: the spec's derived columns except the target (labels come later)."""
    derived = {k: v for k, v in spec.derive.items() if k != spec.target}
    try:
        return nan_as_null(rows.with_columns([pl.sql_expr(e).alias(k) for k, e in derived.items()]))
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"spec '{spec.name}': 'derive' failed on rows to score: {exc}") from exc


def build_features(spec: MLSpec, raw: pl.DataFrame) -> pl.DataFrame:
    """Apply ``derive`` (polars SQL expressions), drop ``drop`` columns (but those the
    fairness report needs), add a stable row id."""
    frame = raw
    for name, expression in spec.derive.items():
        try:
            frame = frame.with_columns(pl.sql_expr(expression).alias(name))
        except pl.exceptions.PolarsError as exc:
            raise DataError(
                f"spec '{spec.name}': field 'derive.{name}': expression {expression!r} failed "
                f"on the raw data: {exc}"
            ) from exc
    if spec.target not in frame.columns:
        raise DataError(
            f"spec '{spec.name}': target column '{spec.target}' is neither in the source data "
            f"nor derived; available columns: {frame.columns}"
        )
    kept = set(spec.fairness.columns) if spec.fairness else set()  # reported, never features
    frame = frame.drop([c for c in spec.drop if c in frame.columns and c not in kept])
    return nan_as_null(frame).with_row_index(ROW_ID)


def nan_as_null(frame: pl.DataFrame) -> pl.DataFrame:
    """Floating-point NaN (a CSV's 'NaN', a derived 0/0) is a missing value, as pandas has it:
    counted by the null checks and imputed like any null, never fed to a model as a number."""
    return frame.with_columns(pl.col(pl.Float32, pl.Float64).fill_nan(None))


def feature_columns(spec: MLSpec, frame: pl.DataFrame) -> list[str]:
    """Model inputs: everything but the target, the time column, our ``__`` columns and a
    dropped column kept for the fairness report."""
    excluded = {spec.target, spec.time_column, *spec.drop}
    return [c for c in frame.columns if c not in excluded and not c.startswith("__")]


class _HashSink:
    """A write-only file object that hashes what is written to it (no copy kept)."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass


def _column_digest(column: pl.Series) -> bytes:
    """The digest of one column's values and nulls.

    Arrow keeps arbitrary bytes under null slots (whatever a filter or ``when`` left there),
    so a column with nulls is hashed as its null mask plus its non-null values: equal columns
    give equal digests however they were built.
    """
    sink = _HashSink()
    parts = [column]
    if column.null_count():
        parts = [column.is_null().alias(f"{column.name}.null"), column.drop_nulls()]
    for part in parts:
        part.to_frame().rechunk().write_ipc_stream(sink, compression="uncompressed")
    return sink.digest.digest()


def fingerprint(frame: pl.DataFrame, rows: pl.Series | None = None) -> str:
    """A content hash of a frame (schema, row order and values) for lineage tags; with a
    boolean ``rows`` mask, the hash of ``frame.filter(rows)``, one column at a time so that
    the filtered frame is never built whole.

    Hashes the Arrow IPC serialisation of each column (a stable format, rather than polars'
    row hashes, which may change between polars versions), columns in parallel on every
    available core, then the ordered column digests and the row count.
    """

    def digest(column: pl.Series) -> bytes:
        return _column_digest(column if rows is None else column.filter(rows))

    with ThreadPoolExecutor(min(available_threads(), max(frame.width, 1))) as pool:
        digests = list(pool.map(digest, frame.get_columns()))
    height = frame.height if rows is None else int(rows.sum())
    total = hashlib.sha256(str(height).encode())
    for digest in digests:
        total.update(digest)
    return total.hexdigest()[:16]


def class_labels(target: pl.Series) -> list[object]:
    """The distinct labels of a classification target, sorted (at least two)."""
    values = sorted(target.drop_nulls().unique().to_list())
    if len(values) < 2:
        raise DataError(
            f"target '{target.name}' has {len(values)} distinct value(s) {values}; "
            "classification needs at least 2 classes in the training rows"
        )
    return values


def positive_class(target: pl.Series) -> object:
    """The positive label of a binary target: the larger of its two values (1 of 0/1)."""
    values = sorted(target.drop_nulls().unique().to_list())
    if len(values) != 2:
        raise DataError(
            f"target '{target.name}' has {len(values)} distinct value(s) {values[:10]}; "
            "binary classification needs exactly 2"
        )
    return values[1]


def binary_target(target: pl.Series, positive: object) -> np.ndarray:
    """0/1 labels with 1 for ``positive``."""
    return (target == positive).cast(pl.Int8).to_numpy()


def class_index(target: pl.Series, classes: list[object]) -> np.ndarray:
    """Each row's position in ``classes`` (a multiclass target's labels, as trained on); a
    label the model never saw is an error naming it."""
    index = {label: i for i, label in enumerate(classes)}
    values = target.to_list()
    unknown = sorted({v for v in values if v not in index}, key=str)
    if unknown:
        raise DataError(
            f"target '{target.name}' has label(s) {unknown[:10]} that the training rows do "
            f"not have (the model knows {classes}); every class needs training rows: "
            "stratify the split or merge the rare labels in 'derive'"
        )
    return np.fromiter((index[v] for v in values), dtype=np.float64, count=len(values))
