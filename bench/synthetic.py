"""A seeded synthetic binary-classification table for the scale benchmark.

16 float columns (some correlated, 1% missing in two of them), 4 string categorical columns of
3, 8, 20 and 40 levels, and a binary label from a logistic model with interactions and noise
(about 30% positives; a good model reaches a test ROC AUC near 0.75). Written in blocks of
1,000,000 rows so that 10M rows never sit in memory at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

FLOATS = [f"x{i:02d}" for i in range(16)]
CATEGORIES = {"plan": 3, "channel": 8, "region": 20, "segment": 40}
LABEL = "label"
BLOCK = 1_000_000


def _block(n: int, rng: np.random.Generator, effects: dict[str, np.ndarray]) -> pl.DataFrame:
    latent = rng.standard_normal((n, 4))
    x = rng.standard_normal((n, len(FLOATS)))
    x[:, :8] += latent @ np.full((4, 8), 0.5)  # correlated groups of columns
    columns: dict[str, np.ndarray | pl.Series] = {name: x[:, i] for i, name in enumerate(FLOATS)}
    logit = -1.2 + 0.6 * x[:, 0] - 0.5 * x[:, 1] + 0.4 * x[:, 2] * x[:, 3]
    logit += 0.3 * np.sin(2 * x[:, 4]) + 0.25 * np.maximum(x[:, 5], 0) - 0.2 * x[:, 6] ** 2
    for name, levels in CATEGORIES.items():
        codes = rng.integers(0, levels, n)
        logit += effects[name][codes]
        columns[name] = pl.Series(name, codes).replace_strict(
            {i: f"{name}_{i:02d}" for i in range(levels)}, return_dtype=pl.String
        )
    columns[LABEL] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    frame = pl.DataFrame(columns)
    missing = rng.random((n, 2)) < 0.01
    return frame.with_columns(
        pl.when(pl.Series(missing[:, 0])).then(None).otherwise(pl.col("x07")).alias("x07"),
        pl.when(pl.Series(missing[:, 1])).then(None).otherwise(pl.col("x12")).alias("x12"),
    )


def write(path: Path, rows: int, seed: int = 7) -> Path:
    """Write ``rows`` rows to ``path`` (parquet); the same seed gives the same file content."""
    rng = np.random.default_rng(seed)
    effects = {name: rng.normal(0, 0.4, levels) for name, levels in CATEGORIES.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    writer = None
    try:
        for start in range(0, rows, BLOCK):
            table = _block(min(BLOCK, rows - start), rng, effects).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    tmp.rename(path)
    return path
