"""Partitions of the rows a model learns from, made the way the spec's split is made: the
rows that watch early stopping, and k cross-validation folds.

Whatever the spec's split keeps apart stays apart here too: with ``group_columns`` a group
(an entity) is never on both sides; a temporal split holds out the latest rows and trains on
earlier ones only; a stratified split keeps each class's share on both sides. Each function
returns row positions (sorted) into the frame it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ml_assets.lib.spec import MLSpec


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: positions of the rows fitted on and scored on."""

    index: int
    fit: np.ndarray
    score: np.ndarray


def _group_ids(frame: pl.DataFrame, keys: list[str]) -> np.ndarray:
    """A dense id per distinct combination of ``keys`` (nulls are a value of their own)."""
    return frame.select(pl.struct(keys).rank("dense").alias("g"))["g"].to_numpy() - 1


def _time_order(spec: MLSpec, frame: pl.DataFrame) -> np.ndarray:
    assert spec.time_column is not None
    return np.argsort(frame[spec.time_column].to_numpy(), kind="stable")


def holdout(
    spec: MLSpec, frame: pl.DataFrame, fraction: float, stream: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held) positions: about ``fraction`` of the rows held out as the split would
    hold them out (latest in time, whole groups, per class, or at random; seeded)."""
    n = frame.height
    held_n = min(max(1, int(round(n * fraction))), n - 1)
    rng = np.random.default_rng([spec.split.seed, stream])
    if spec.split_strategy == "temporal" and spec.time_column:
        order = _time_order(spec, frame)
        held = order[n - held_n :]
    elif spec.split.group_columns and (groups := _group_ids(frame, spec.split.group_columns)).max():
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
                rng.permutation(idx)[: int(round(len(idx) * fraction))]
                for idx in (np.flatnonzero(target == c) for c in np.unique(target))
            ]
        )
    else:
        held = rng.permutation(n)[:held_n]
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def cv_folds(spec: MLSpec, frame: pl.DataFrame, k: int, stream: int = 2) -> list[Fold]:
    """k folds of ``frame``'s rows. Temporal: the rows in time order cut into k + 1 blocks;
    fold i fits on blocks 0..i and scores block i + 1 (never fitting on the future). Grouped:
    groups dealt to folds, largest first, each to the fold with the fewest rows. Stratified:
    each class's rows dealt round-robin in shuffled order. Otherwise shuffled rows cut in k."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    n = frame.height
    rng = np.random.default_rng([spec.split.seed, stream])
    if spec.split_strategy == "temporal" and spec.time_column:
        blocks = np.array_split(_time_order(spec, frame), k + 1)
        return [
            Fold(i, np.sort(np.concatenate(blocks[: i + 1])), np.sort(blocks[i + 1]))
            for i in range(k)
        ]
    assignment = np.empty(n, dtype=int)
    if spec.split.group_columns:
        groups = _group_ids(frame, spec.split.group_columns)
        sizes = np.bincount(groups)
        if len(sizes) < k:
            raise ValueError(
                f"spec '{spec.name}': {len(sizes)} groups of {spec.split.group_columns} cannot "
                f"fill {k} folds; lower split.cv_folds"
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
