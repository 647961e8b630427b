"""Preprocessing fitted on the training split only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

CODES_BLOCK_ROWS = 262_144


@dataclass(frozen=True)
class Preprocessor:
    """Imputation, scaling and category levels learned from training rows.

    ``codes`` feeds LightGBM (NaN kept, categories as integer codes of the training levels);
    ``design`` feeds GLMs (median-imputed, standardised, one-hot with the first level dropped).
    Categories never seen in training become NaN (LightGBM) or all-zero dummies (GLM).
    """

    numeric: list[str]
    categorical: list[str]
    medians: dict[str, float]
    means: dict[str, float]
    stds: dict[str, float]
    levels: dict[str, list[object]]

    @classmethod
    def fit(cls, train: pl.DataFrame, features: list[str], categorical: list[str]) -> Preprocessor:
        cats = [c for c in features if c in set(categorical)]
        nums = [c for c in features if c not in set(cats)]
        medians, means, stds = {}, {}, {}
        for c in nums:
            col = train[c].cast(pl.Float64)
            med = col.median()
            medians[c] = float(med) if med is not None else 0.0
            filled = col.fill_null(medians[c])
            means[c] = float(filled.mean() or 0.0)
            std = float(filled.std() or 0.0)
            stds[c] = std if std > 0 else 1.0
        levels = {c: sorted(train[c].drop_nulls().unique().to_list(), key=str) for c in cats}
        return cls(nums, cats, medians, means, stds, levels)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def codes(self, frame: pl.DataFrame) -> np.ndarray:
        """Float rows in C order (what LightGBM reads fastest), categories as level codes."""
        cols = [frame[c].cast(pl.Float64) for c in self.numeric]
        cols += [self._level_codes(frame[c]) for c in self.categorical]
        out = np.empty((frame.height, len(cols)), dtype=np.float64)
        if not cols:
            return out
        coded = pl.DataFrame(cols)
        # Row-major, a block of rows at a time: each block's transpose stays in cache
        # (10M rows x 7 columns: about 0.7 s warm, against 1.0 s in one piece).
        for start in range(0, frame.height, CODES_BLOCK_ROWS):
            block = coded.slice(start, CODES_BLOCK_ROWS)
            out[start : start + block.height] = block.to_numpy(order="c")
        return out

    def _level_codes(self, column: pl.Series) -> pl.Series:
        levels = self.levels[column.name]
        if column.dtype in (pl.String, pl.Categorical) and all(isinstance(v, str) for v in levels):
            # unseen categories fail the non-strict cast and become null
            enum = column.cast(pl.Enum(levels), strict=False)
            return enum.to_physical().cast(pl.Float64)
        mapping = {v: float(i) for i, v in enumerate(levels)}
        return column.replace_strict(mapping, default=None, return_dtype=pl.Float64)

    def design_names(self) -> list[str]:
        dummies = [f"{c}={v}" for c in self.categorical for v in self.levels[c][1:]]
        return ["const", *self.numeric, *dummies]

    def design(self, frame: pl.DataFrame) -> np.ndarray:
        exprs = [pl.repeat(1.0, pl.len(), dtype=pl.Float64).alias("const")]
        for c in self.numeric:
            scaled = (
                pl.col(c).cast(pl.Float64).fill_null(self.medians[c]) - self.means[c]
            ) / self.stds[c]
            exprs.append(scaled.alias(c))
        for c in self.categorical:
            for v in self.levels[c][1:]:
                exprs.append((pl.col(c) == v).fill_null(False).cast(pl.Float64).alias(f"{c}={v}"))
        return frame.select(exprs).to_numpy().astype(np.float64, copy=False)
