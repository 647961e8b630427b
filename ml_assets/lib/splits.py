"""Train / validation / test splits and the checks that prove they are sound."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ml_assets.lib.data import ROW_ID, SPLIT, DataError, fingerprint
from ml_assets.lib.spec import MLSpec

SPLIT_NAMES = ("train", "validation", "test")


def assign_splits(spec: MLSpec, features: pl.DataFrame) -> pl.DataFrame:
    """``features`` with a ``__split`` column; temporal gaps drop rows between splits."""
    strategy = spec.split_strategy
    if strategy == "temporal":
        return _temporal(spec, features)
    rng = np.random.default_rng(spec.split.seed)
    labels = np.empty(features.height, dtype=object)
    if strategy == "stratified":
        target = features[spec.target].to_numpy()
        for cls in np.unique(target):
            idx = np.flatnonzero(target == cls)
            labels[idx] = _shuffled_labels(len(idx), spec, rng)
    elif spec.split.group_columns:
        return _grouped(spec, features, rng)
    else:
        labels[:] = _shuffled_labels(features.height, spec, rng)
    return features.with_columns(pl.Series(SPLIT, labels.astype(str)))


def _grouped(spec: MLSpec, features: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Random split of whole groups, filled in shuffled order up to the configured fractions."""
    keys = spec.split.group_columns
    groups = features.group_by(keys, maintain_order=True).len().sort(keys, nulls_last=True)
    order = rng.permutation(groups.height)
    cumulative = np.cumsum(groups["len"].to_numpy()[order]) / features.height
    test_cut = spec.split.test_fraction
    val_cut = test_cut + spec.split.validation_fraction
    label = np.where(
        cumulative <= test_cut, "test", np.where(cumulative <= val_cut, "validation", "train")
    )
    assigned = groups.select(keys)[order].with_columns(pl.Series(SPLIT, label))
    return features.join(assigned, on=keys, how="left", nulls_equal=True, maintain_order="left")


def _shuffled_labels(n: int, spec: MLSpec, rng: np.random.Generator) -> np.ndarray:
    n_test = int(round(n * spec.split.test_fraction))
    n_val = int(round(n * spec.split.validation_fraction))
    labels = np.array(["train"] * (n - n_test - n_val) + ["validation"] * n_val + ["test"] * n_test)
    rng.shuffle(labels)
    return labels


def _temporal(spec: MLSpec, features: pl.DataFrame) -> pl.DataFrame:
    time = spec.time_column
    assert time is not None
    if features[time].null_count():
        raise DataError(
            f"spec '{spec.name}': time column '{time}' has {features[time].null_count()} null "
            "values; a temporal split needs a time for every row"
        )
    ordered = features.sort(time, ROW_ID)
    n = ordered.height
    t = ordered[time]
    test_start = t[int(n * (1 - spec.split.test_fraction))]
    val_start = t[int(n * (1 - spec.split.test_fraction - spec.split.validation_fraction))]
    gap = spec.split.gap
    split = (
        pl.when(pl.col(time) >= test_start)
        .then(pl.lit("test"))
        .when((pl.col(time) >= val_start) & (pl.col(time) < before_gap(test_start, gap)))
        .then(pl.lit("validation"))
        .when(pl.col(time) < before_gap(val_start, gap))
        .then(pl.lit("train"))
        .otherwise(pl.lit(None))
    )
    out = ordered.with_columns(split.alias(SPLIT)).drop_nulls(SPLIT).sort(ROW_ID)
    return out


def before_gap(value: object, gap: float | str | None) -> pl.Expr:
    """``value`` less the temporal split's gap (a polars duration or a number), as a literal."""
    lit = pl.lit(value)
    if gap is None or gap == 0:
        return lit
    if isinstance(gap, str):
        return lit.dt.offset_by(f"-{gap}")
    return lit - gap


def training_fingerprint(splits: pl.DataFrame) -> str:
    """Fingerprint of the train and validation rows (in row-id order): what models learn from.

    Models carry it; the evaluation refuses models whose fingerprint differs from the current
    splits, so a partial re-run can never score an old model on rows it was trained on.
    """
    mask = splits[SPLIT].is_in(["train", "validation"])
    if splits[ROW_ID].filter(mask).is_sorted():  # stored in row-id order: hash in place
        return fingerprint(splits, mask)
    return fingerprint(splits.filter(mask).sort(ROW_ID))


def split_rows(splits: pl.DataFrame) -> dict[str, int]:
    """Rows per split (0 for an empty one), counted without copying any rows."""
    counts = splits[SPLIT].value_counts()
    found = dict(zip(counts[SPLIT], counts["count"], strict=True))
    return {s: int(found.get(s, 0)) for s in SPLIT_NAMES}


@dataclass(frozen=True)
class SplitCheck:
    name: str
    passed: bool
    detail: str
    metadata: dict[str, float | int | str]


def check_disjoint(splits: pl.DataFrame) -> SplitCheck:
    """No row id in two splits."""
    counts = splits.group_by(ROW_ID).agg(pl.col(SPLIT).n_unique().alias("n"))
    shared = int((counts["n"] > 1).sum())
    dupes = splits.height - splits[ROW_ID].n_unique()
    ok = shared == 0 and dupes == 0
    detail = (
        "no row is in two splits"
        if ok
        else f"{shared} row ids appear in more than one split; {dupes} rows repeat a row id"
    )
    return SplitCheck(
        "splits_disjoint", ok, detail, {"rows_in_two_splits": shared, "repeated_row_ids": dupes}
    )


def check_groups_disjoint(spec: MLSpec, splits: pl.DataFrame) -> SplitCheck:
    """With group_columns: no group (entity) appears in two splits."""
    keys = spec.split.group_columns
    if not keys:
        return SplitCheck("splits_groups_disjoint", True, "no group columns declared", {})
    spread = splits.group_by(keys).agg(pl.col(SPLIT).n_unique().alias("n"))
    shared = int((spread["n"] > 1).sum())
    detail = (
        f"{shared} groups of {keys} appear in more than one split"
        if shared
        else (f"all {spread.height} groups of {keys} sit in a single split")
    )
    return SplitCheck(
        "splits_groups_disjoint", shared == 0, detail, {"groups_in_two_splits": shared}
    )


def check_proportions(spec: MLSpec, splits: pl.DataFrame, tolerance: float = 0.02) -> SplitCheck:
    """Split sizes as configured and, when stratified, class shares kept in every split."""
    n = splits.height
    wanted = {
        "validation": spec.split.validation_fraction,
        "test": spec.split.test_fraction,
    }
    wanted["train"] = 1 - wanted["validation"] - wanted["test"]
    rows = split_rows(splits)
    actual = {s: rows[s] / max(n, 1) for s in SPLIT_NAMES}
    # A temporal gap removes rows, so its fractions are looser by the share of rows it drops.
    slack = tolerance + (0.0 if spec.split.gap in (None, 0) else 0.1)
    if spec.split.group_columns:  # whole groups move together, so sizes are approximate
        slack += 0.03
    if spec.split_strategy == "temporal" and spec.time_column and n:
        # Rows sharing a timestamp stay together (e.g. daily snapshots), so a cut can miss the
        # configured fraction by up to the largest such block.
        slack += splits.group_by(spec.time_column).len()["len"].max() / n
    problems = [
        f"{s}: {actual[s]:.3f} vs configured {wanted[s]:.3f}"
        for s in SPLIT_NAMES
        if abs(actual[s] - wanted[s]) > slack or actual[s] == 0
    ]
    meta: dict[str, float | int | str] = {f"{s}_fraction": round(actual[s], 4) for s in SPLIT_NAMES}
    meta |= {f"{s}_rows": rows[s] for s in SPLIT_NAMES}
    if spec.split_strategy == "stratified":
        labels = sorted(splits[spec.target].drop_nulls().unique().to_list())
        named = {"positive": labels[-1]} if len(labels) == 2 else {str(v): v for v in labels}
        for name, label in named.items():
            problems += _class_share_problems(splits, spec.target, name, label, tolerance, meta)
    ok = not problems
    detail = "proportions as configured" if ok else "; ".join(problems)
    return SplitCheck("splits_proportions", ok, detail, meta)


def _class_share_problems(
    splits: pl.DataFrame,
    target: str,
    name: str,
    label: object,
    tolerance: float,
    meta: dict[str, float | int | str],
) -> list[str]:
    """Whether every split holds about the overall share of rows of class ``label``; each
    split's share goes into ``meta`` as ``<split>_<name>_share``."""
    is_label = pl.col(target) == label
    overall = splits.select(is_label.mean()).item()
    by_split = splits.group_by(SPLIT).agg(is_label.mean().alias("share"))
    shares = dict(zip(by_split[SPLIT], by_split["share"], strict=True))
    problems = []
    for s in SPLIT_NAMES:
        share = shares.get(s)
        meta[f"{s}_{name}_share"] = round(float(share or 0), 4)
        if share is None or abs(float(share) - float(overall)) > tolerance:
            problems.append(f"{s}: {name} share {share} vs overall {overall:.3f}")
    return problems


def check_time_order(spec: MLSpec, splits: pl.DataFrame) -> SplitCheck:
    """Temporal splits: every train time < every validation time < every test time."""
    time = spec.time_column
    if spec.split_strategy != "temporal" or time is None:
        return SplitCheck("splits_time_order", True, "not a temporal split", {})
    bounds = splits.group_by(SPLIT).agg(
        pl.col(time).min().alias("lo"), pl.col(time).max().alias("hi")
    )
    b = {r[SPLIT]: (r["lo"], r["hi"]) for r in bounds.iter_rows(named=True)}
    missing = [s for s in ("train", "test") if s not in b]
    if missing:
        return SplitCheck("splits_time_order", False, f"empty split(s): {missing}", {})
    order = [s for s in SPLIT_NAMES if s in b]  # forecasting has no validation split
    ok = all(b[a][1] < b[c][0] for a, c in zip(order, order[1:], strict=False))
    meta = {f"{s}_{end}": str(b[s][i]) for s in order for i, end in enumerate(("start", "end"))}
    detail = f"{' < '.join(order)} in time" if ok else f"time ranges overlap: {meta}"
    return SplitCheck("splits_time_order", ok, detail, meta)
