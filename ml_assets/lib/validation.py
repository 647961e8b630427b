"""Data contracts and their Great Expectations 1.x suites.

The contract for a spec has two sources: what the spec declares (``validation:``) and what is
learned from the first data that passes validation (types, value ranges widened by a tolerance,
categories), stored as JSON so that later runs are held to it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import polars as pl

from ml_assets.lib import value_checks
from ml_assets.lib.data import ROW_ID, fingerprint
from ml_assets.lib.spec import ColumnContract, MLSpec
from ml_assets.lib.storage import write_text_atomic
from ml_assets.lib.value_checks import Failure

log = logging.getLogger(__name__)

Stage = Literal["raw_data", "features"]
TypeFamily = Literal["numeric", "string", "bool", "datetime"]
MAX_LEARNED_CATEGORIES = 50
# A 64-bit hash of every data column of a row: GX judges duplicate rows on this one column
# (pandas' duplicated() over 20 columns costs ~2.5 s per million rows; this costs ~0.1 s). Two
# different rows share a hash with probability ~n^2 / 2^65 (3e-6 at 10M rows).
ROW_HASH = "__row_hash"

# pandas dtype names GX reports, per type family (string columns are handed over as object).
_GX_TYPES: dict[str, list[str]] = {
    "numeric": [
        *(f"int{b}" for b in (8, 16, 32, 64)),
        *(f"uint{b}" for b in (8, 16, 32, 64)),
        "float32",
        "float64",
    ],
    # Strings reach GX as pandas StringDtype columns, judged by their dtype; the other names
    # cover object columns, which GX checks value by value.
    "string": ["StringDtype", "object", "str", "string"],
    "bool": ["bool", "boolean", "object"],
    "datetime": [
        "datetime64",
        *(f"datetime64[{unit}]" for unit in ("s", "ms", "us", "ns")),
        "Timestamp",
        "date",
        "datetime",
        "object",
    ],
}

MAX_CLASSES = 50  # distinct labels a classification target may have


class ContractFileError(ValueError):
    """A learned-contract file that cannot be read, named with the fix."""


@dataclass(frozen=True)
class LearnedContract:
    """Column profiles learned from data that passed validation."""

    learned_from: str
    rows: int
    raw_columns: list[str]
    columns: dict[str, dict[str, Any]]

    def save(self, path: Path) -> None:
        """Written whole or not at all: a killed run leaves the previous file (or none)."""
        write_text_atomic(path, json.dumps(asdict(self), indent=2, default=str))

    @classmethod
    def load(cls, path: Path) -> LearnedContract | None:
        if not path.exists():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ContractFileError(
                f"learned data contract {path} is not a readable contract ({exc}); delete it "
                "and the next passing run learns it again"
            ) from exc


@dataclass(frozen=True)
class ValidationOutcome:
    stage: Stage
    success: bool
    evaluated: int
    rows: int
    failures: list[Failure]
    # Passed expectations with some unexpected rows within their tolerance (GX ``mostly``).
    warnings: list[Failure] = field(default_factory=list)

    def summary(self) -> str:
        if self.success:
            text = f"{self.stage}: all {self.evaluated} expectations passed on {self.rows} rows"
            if self.warnings:
                text += f", {len(self.warnings)} within tolerance:\n" + "\n".join(
                    f"- {w.expectation} on {w.column or 'table'}: {w.detail}" for w in self.warnings
                )
            return text
        lines = [f"{self.stage}: {len(self.failures)} of {self.evaluated} expectations failed:"]
        lines += [f"- {f.expectation} on {f.column or 'table'}: {f.detail}" for f in self.failures]
        return "\n".join(lines)


def type_family(dtype: pl.DataType) -> TypeFamily:
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_numeric():
        return "numeric"
    if dtype.is_temporal():
        return "datetime"
    return "string"


def categorical_columns(spec: MLSpec, frame: pl.DataFrame) -> list[str]:
    """Declared categoricals plus every string-like or boolean column."""
    auto = [c for c, t in frame.schema.items() if type_family(t) in ("string", "bool")]
    return sorted({*spec.categorical, *auto} - {ROW_ID, spec.time_column, spec.target})


def learn_contract(
    spec: MLSpec, raw_schema: Mapping[str, pl.DataType], features: pl.DataFrame
) -> LearnedContract:
    """Profile the columns: the raw columns' type families (the raw stage checks no more),
    and for feature columns also a widened numeric range or the category set."""
    columns: dict[str, dict[str, Any]] = {
        name: {"type": type_family(dtype)} for name, dtype in raw_schema.items()
    }
    cats = set(categorical_columns(spec, features))
    tol = spec.validation.range_tolerance
    for name, dtype in features.schema.items():
        if name == ROW_ID:
            continue
        profile: dict[str, Any] = {"type": type_family(dtype)}
        values = features[name].drop_nulls()
        profile["null_rate"] = features[name].null_count() / max(features.height, 1)
        if dtype.is_float():  # bounds learned from infinities would check nothing
            values = values.filter(values.is_finite())
        if name in cats and values.n_unique() <= MAX_LEARNED_CATEGORIES:
            profile["allowed"] = sorted(values.unique().to_list(), key=str)
        elif profile["type"] == "numeric" and name != spec.target and len(values):
            lo, hi = float(values.min()), float(values.max())
            pad = tol * (hi - lo)
            profile["min"], profile["max"] = lo - pad, hi + pad
        columns[name] = profile
    return LearnedContract(fingerprint(features), features.height, list(raw_schema), columns)


def _declared_or_learned(
    spec: MLSpec, learned: LearnedContract | None, columns: list[str]
) -> dict[str, ColumnContract]:
    out: dict[str, ColumnContract] = {}
    for name in columns:
        base = dict(learned.columns.get(name, {}) if learned else {})
        base.pop("null_rate", None)  # judged by value_checks, not by GX
        declared = spec.validation.columns.get(name)
        if declared:
            base.update(declared.model_dump(exclude_unset=True))
        if base:
            out[name] = ColumnContract(**base)
    return out


def build_expectations(
    spec: MLSpec, stage: Stage, frame: pl.DataFrame, learned: LearnedContract | None
) -> list[Any]:
    """GX expectation objects for one stage of one spec."""
    import great_expectations.expectations as gxe

    v = spec.validation
    if stage == "raw_data":
        from ml_assets.lib.data import required_source_columns

        exps: list[Any] = [
            gxe.ExpectTableRowCountToBeBetween(min_value=v.min_rows, max_value=v.max_rows)
        ]
        declared = set(spec.validation.columns) - set(spec.derive)
        learned_raw = set(learned.raw_columns if learned else [])
        expected_cols = set(required_source_columns(spec)) | learned_raw | declared
        exps += [gxe.ExpectColumnToExist(column=c) for c in sorted(expected_cols)]
        for name, contract in _declared_or_learned(spec, learned, sorted(expected_cols)).items():
            if contract.type:
                exps.append(
                    gxe.ExpectColumnValuesToBeInTypeList(
                        column=name, type_list=_GX_TYPES[contract.type]
                    )
                )
        return exps

    exps = [
        gxe.ExpectColumnToExist(column=spec.target),
        gxe.ExpectColumnValuesToNotBeNull(column=spec.target),
    ]
    if spec.task != "classification":
        exps.append(
            gxe.ExpectColumnValuesToBeInTypeList(column=spec.target, type_list=_GX_TYPES["numeric"])
        )
    if spec.task == "classification":
        exps.append(
            # Two classes or more; past MAX_CLASSES the target is more likely a number or an
            # identifier declared as classification than a set of classes.
            gxe.ExpectColumnUniqueValueCountToBeBetween(
                column=spec.target, min_value=2, max_value=MAX_CLASSES
            )
        )
    data_cols = [c for c in frame.columns if c != ROW_ID]
    for name, contract in _declared_or_learned(spec, learned, data_cols).items():
        if contract.allowed is not None:
            exps.append(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=contract.allowed))
        if contract.min is not None or contract.max is not None:
            # Declared bounds are strict; a learned bound tolerates a small share of rows
            # outside it (reported as a warning). A column may have one of each.
            declared = spec.validation.columns.get(name)
            dmin, dmax = (declared.min, declared.max) if declared else (None, None)
            if dmin is not None or dmax is not None:
                exps.append(
                    gxe.ExpectColumnValuesToBeBetween(column=name, min_value=dmin, max_value=dmax)
                )
            lmin = contract.min if dmin is None else None
            lmax = contract.max if dmax is None else None
            if lmin is not None or lmax is not None:
                exps.append(
                    gxe.ExpectColumnValuesToBeBetween(
                        column=name,
                        min_value=lmin,
                        max_value=lmax,
                        mostly=1 - v.learned_range_outside_share,
                    )
                )
        if not contract.nullable:
            exps.append(gxe.ExpectColumnValuesToNotBeNull(column=name))
    if data_cols:  # duplicate rows, judged on one hash column (see _with_row_hash)
        exps.append(
            gxe.ExpectColumnValuesToBeUnique(column=ROW_HASH, mostly=1 - v.max_duplicate_fraction)
        )
    exps += [_custom_expectation(spec, item) for item in v.expectations]
    return exps


def validate(
    spec: MLSpec, stage: Stage, frame: pl.DataFrame, learned: LearnedContract | None
) -> ValidationOutcome:
    """The stage's data contract (declared and learned) judged on ``frame`` by GX, and at
    the features stage the checks on values (``value_checks``)."""
    outcome = run_expectations(stage, frame, build_expectations(spec, stage, frame, learned))
    if stage != "features":
        return outcome
    found, checked = value_checks.for_spec(spec, frame, learned.columns if learned else {})
    return replace(
        outcome,
        success=outcome.success and not found,
        evaluated=outcome.evaluated + checked,
        failures=outcome.failures + found,
    )


def _custom_expectation(spec: MLSpec, item: dict[str, dict[str, Any]]) -> Any:
    import great_expectations.expectations as gxe

    ((name, kwargs),) = item.items()
    class_name = "".join(part.capitalize() for part in name.split("_"))
    cls = getattr(gxe, class_name, None)
    if cls is None:
        raise ValueError(
            f"spec '{spec.name}': field 'validation.expectations': '{name}' is not a Great "
            "Expectations 1.x expectation (see gx.expectations for the names)"
        )
    try:
        return cls(**kwargs)
    except Exception as exc:  # pydantic error from GX: re-raise with the spec location
        raise ValueError(
            f"spec '{spec.name}': field 'validation.expectations.{name}': "
            f"bad arguments {kwargs}: {exc}"
        ) from exc


def _to_pandas_for_gx(frame: pl.DataFrame) -> Any:
    """The frame as GX's pandas engine needs it, without per-value Python objects.

    GX 1.x does not recognise pandas 3's default "str" dtype in type checks, but it does
    recognise ``StringDtype``: string columns are handed over as that (Arrow-backed, no copy
    into Python strings), so type, set and null checks stay vectorised at millions of rows.
    """
    import pandas as pd

    pdf = frame.to_pandas()
    for name, dtype in frame.schema.items():
        if type_family(dtype) == "string":
            pdf[name] = pdf[name].astype(pd.StringDtype())
    return pdf


def _with_row_hash(frame: pl.DataFrame) -> pl.DataFrame:
    data_cols = [c for c in frame.columns if c != ROW_ID]
    return frame.with_columns(frame.select(data_cols).hash_rows(seed=0).alias(ROW_HASH))


def run_expectations(
    stage: Stage, frame: pl.DataFrame, expectations: list[Any]
) -> ValidationOutcome:
    """Run the expectations on ``frame`` with an ephemeral GX context.

    Expectations are grouped by the column they judge and each group runs on a frame of that
    column only: GX's pandas engine copies its whole batch for every column expectation (to
    drop the column's nulls), which at millions of rows costs more time and memory than the
    checks themselves. Table expectations (row count, columns present) run on a zero-copy
    Arrow-backed view of every column. Every expectation still judges every row.
    """
    with _without_gx_batch_hashing():
        return _run_grouped(stage, frame, expectations)


@contextlib.contextmanager
def _without_gx_batch_hashing() -> Iterator[None]:
    """GX's pandas engine md5-hashes every batch under 1 GB into a batch marker, which costs
    ~40% of a validation at millions of rows and is never read here (the data's fingerprint
    is ours, per column). The engine's size threshold is lowered for our runs only."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    saved = engine.HASH_THRESHOLD
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = saved


def _run_grouped(stage: Stage, frame: pl.DataFrame, expectations: list[Any]) -> ValidationOutcome:
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    if any(getattr(e, "column", None) == ROW_HASH for e in expectations):
        frame = _with_row_hash(frame)
    groups: dict[str | None, list[Any]] = {}
    for expectation in expectations:
        column = getattr(expectation, "column", None)
        # An expectation on a missing column runs with the table, where GX reports it.
        groups.setdefault(column if column in frame.columns else None, []).append(expectation)
    results = []
    for i, (column, group) in enumerate(groups.items()):
        # A data source per group: GX's execution engine caches every metric it resolves
        # (full-length masks and index hashes among them) for as long as its data source
        # lives, so one shared source would hold every column's intermediates to the end.
        source = context.data_sources.add_pandas(f"ml_assets_{i}")
        batch = source.add_dataframe_asset(stage).add_batch_definition_whole_dataframe("all_rows")
        suite = gx.ExpectationSuite(name=f"{stage}_contract_{i}")
        for expectation in group:
            suite.add_expectation(expectation)
        data = (
            frame.to_pandas(use_pyarrow_extension_array=True)
            if column is None
            else _to_pandas_for_gx(frame.select(column))
        )
        result = gx.ValidationDefinition(
            name=f"{stage}_validation_{i}", data=batch, suite=context.suites.add(suite)
        ).run(
            batch_parameters={"dataframe": data},
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
        )
        results += result.results
        context.data_sources.delete(source.name)
        del data, source, batch, result
    failures = [_describe(r, frame.height) for r in results if not r.success]
    warnings = [
        _describe(r, frame.height)
        for r in results
        if r.success and (r.result or {}).get("unexpected_count")
    ]
    return ValidationOutcome(stage, not failures, len(results), frame.height, failures, warnings)


def _describe(result: Any, rows: int) -> Failure:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    column = kwargs.get("column")
    info = result.exception_info or {}
    if info.get("raised_exception"):
        detail = f"could not be evaluated ({info.get('exception_message')}); is the column missing?"
        return Failure(config.type, column, detail)
    res = result.result or {}
    expected = {k: v for k, v in kwargs.items() if k not in ("column", "column_list")}
    if column == ROW_HASH:
        count = int(res.get("unexpected_count") or 0)
        detail = (
            f"{count} of {rows} rows ({100 * count / max(rows, 1):.2f}%) repeat another row "
            f"(all data columns equal); the contract allows {1 - float(expected['mostly']):.2%} "
            "(validation.max_duplicate_fraction): raise it if repeated rows are expected"
        )
        return Failure("duplicate_rows", None, detail, count)
    if "unexpected_count" in res and res["unexpected_count"]:
        count = int(res["unexpected_count"])
        examples = list(res.get("partial_unexpected_list") or [])[:5]
        detail = (
            f"{count} of {rows} rows ({100 * count / max(rows, 1):.2f}%) unexpected; "
            f"expected {expected}; examples {examples}"
        )
        return Failure(config.type, column, detail, count, examples)
    detail = f"observed {res.get('observed_value')!r}; expected {expected}"
    return Failure(config.type, column, detail)
