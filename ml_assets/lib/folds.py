"""Partitions of the rows a model learns from, made the way the spec's split is made: the
rows that watch early stopping, and k cross-validation folds.

Whatever the spec's split keeps apart stays apart here too: with ``group_columns`` a group
(an entity) is never on both sides; a temporal split holds out the latest rows and trains on
earlier ones only; a stratified split keeps each class's share on both sides. Each function
returns row positions (sorted) into the frame it is given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl

from ml_assets.lib.spec import MLSpec
from ml_assets.lib.splits import before_gap

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: positions of the rows fitted on and scored on."""

    index: int
    fit: np.ndarray
    score: np.ndarray


def _group_ids(frame: pl.DataFrame, keys: list[str]) -> np.ndarray:
    """A dense id per distinct combination of ``keys`` (nulls are a value of their own)."""
    return frame.select(pl.struct(keys).rank("dense").alias("g"))["g"].to_numpy() - 1


def _time_cuts(spec: MLSpec, frame: pl.DataFrame, shares: list[float]) -> list[object]:
    """The times at which the rows in time order reach each share: cuts fall between times,
    so rows of one time stay on one side, as in the split itself."""
    assert spec.time_column is not None
    ordered = frame[spec.time_column].sort()
    return [ordered[min(int(frame.height * q), frame.height - 1)] for q in shares]


def _between(
    spec: MLSpec, frame: pl.DataFrame, start: object | None, end: object | None
) -> np.ndarray:
    """Positions of rows with start <= time < end (an open side when None)."""
    column = pl.col(spec.time_column)  # type: ignore[arg-type]
    condition = pl.lit(True)
    if start is not None:
        condition = condition & (column >= start)
    if end is not None:
        condition = condition & (column < end)
    return np.flatnonzero(frame.select(condition.alias("in"))["in"].to_numpy())


def _before(spec: MLSpec, frame: pl.DataFrame, cut: object) -> np.ndarray:
    """Positions of rows earlier than ``cut`` less the split's gap."""
    time = frame[spec.time_column].dtype  # type: ignore[index]
    end = pl.select(before_gap(cut, spec.split.gap).cast(time)).item()
    return _between(spec, frame, None, end)


def holdout(
    spec: MLSpec, frame: pl.DataFrame, fraction: float, stream: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held) positions: about ``fraction`` of the rows held out as the split would
    hold them out (the latest times, with the split's gap before them; whole groups; each
    class's share; or at random; seeded). Rows in a temporal gap are in neither."""
    n = frame.height
    if n < 2:
        raise ValueError(f"cannot hold out rows of {n} row(s)")
    held_n = min(max(1, int(round(n * fraction))), n - 1)
    rng = np.random.default_rng([spec.split.seed, stream])
    groups = _group_ids(frame, spec.split.group_columns) if spec.split.group_columns else None
    if spec.split_strategy == "temporal" and spec.time_column:
        (cut,) = _time_cuts(spec, frame, [1 - held_n / n])
        held = _between(spec, frame, cut, None)
        kept = _before(spec, frame, cut)
        if len(kept) and len(held):
            return kept, held
        held = np.argsort(frame[spec.time_column].to_numpy(), kind="stable")[n - held_n :]
    elif groups is not None and groups.max() > 0:
        sizes = np.bincount(groups)
        order = rng.permutation(len(sizes))
        # Whole groups in shuffled order until the held rows reach the share, one group left
        # at least to fit on.
        reach = int(np.searchsorted(np.cumsum(sizes[order]), held_n)) + 1
        held = np.flatnonzero(np.isin(groups, order[: min(reach, len(sizes) - 1)]))
    elif spec.split_strategy == "stratified":
        target = frame[spec.target].to_numpy()
        held = np.concatenate(
            [
                rng.permutation(idx)[: max(1, int(round(len(idx) * fraction)))]
                for idx in (np.flatnonzero(target == c) for c in np.unique(target))
                if len(idx) > 1
            ]
            or [rng.permutation(n)[:held_n]]
        )
    else:
        if groups is not None:
            log.warning("one group of %s: rows held out at random", spec.split.group_columns)
        held = rng.permutation(n)[:held_n]
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def cv_folds(spec: MLSpec, frame: pl.DataFrame, k: int, stream: int = 2) -> list[Fold]:
    """k folds of ``frame``'s rows. Temporal: the rows cut at k times into k + 1 blocks of
    about equal rows (rows of one time in one block); fold i scores block i + 1 and fits on
    the rows before it less the split's gap (never on the future). Grouped:
    groups dealt to folds, largest first, each to the fold with the fewest rows. Stratified:
    each class's rows dealt round-robin in shuffled order. Otherwise shuffled rows cut in k."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    n = frame.height
    rng = np.random.default_rng([spec.split.seed, stream])
    if spec.split_strategy == "temporal" and spec.time_column:
        cuts = _time_cuts(spec, frame, [(i + 1) / (k + 1) for i in range(k)])
        ends = [*cuts[1:], None]
        return [
            Fold(i, _before(spec, frame, cut), _between(spec, frame, cut, end))
            for i, (cut, end) in enumerate(zip(cuts, ends, strict=True))
        ]
    assignment = np.empty(n, dtype=int)
    if spec.split.group_columns:
        groups = _group_ids(frame, spec.split.group_columns)
        sizes = np.bincount(groups)
        if len(sizes) < k:
            raise ValueError(
                f"spec '{spec.name}': {len(sizes)} groups of {spec.split.group_columns} cannot "
                f"fill {k} folds; use fewer folds"
            )
        shuffled = rng.permutation(len(sizes))
        fold_of_group = np.empty(len(sizes), dtype=int)
        load = np.zeros(k, dtype=int)
        for g in shuffled[np.argsort(-sizes[shuffled], kind="stable")]:
            fold_of_group[g] = int(np.argmin(load))
            load[fold_of_group[g]] += sizes[g]
        assignment = fold_of_group[groups]
    elif spec.split_strategy == "stratified":
        target = frame[spec.target].to_numpy()
        offset = 0
        for c in np.unique(target):
            idx = rng.permutation(np.flatnonzero(target == c))
            assignment[idx] = (np.arange(len(idx)) + offset) % k
            offset += len(idx)
    else:
        assignment[rng.permutation(n)] = np.arange(n) % k
    return [
        Fold(i, np.flatnonzero(assignment != i), np.flatnonzero(assignment == i)) for i in range(k)
    ]
