"""A synthetic rare-event table (fraud-like: a few percent positives), for imbalance tests
and ``make bench-imbalance``.

Six numeric features and a four-level category; the label is drawn from a logistic model with
a linear part, an interaction and a non-monotone term, its intercept solved so that the
expected positive share is the one asked for.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def _intercept(signal: np.ndarray, share: float) -> float:
    """The intercept whose mean logistic probability over ``signal`` is ``share``."""
    low, high = -30.0, 30.0
    for _ in range(80):
        mid = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(mid + signal)))) < share:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def rare_events(rows: int, positive_share: float = 0.02, seed: int = 0) -> pl.DataFrame:
    """``rows`` rows with columns x0..x5, segment, and label ``y`` (1 in about
    ``positive_share`` of them); the same arguments give the same rows."""
    if not 0 < positive_share < 1:
        raise ValueError(f"positive_share must be between 0 and 1, got {positive_share}")
    rng = np.random.default_rng([seed, 11])
    x = rng.normal(size=(rows, 6))
    segment = rng.choice(["a", "b", "c", "d"], size=rows, p=[0.4, 0.3, 0.2, 0.1])
    signal = (
        1.2 * x[:, 0]
        - 0.8 * x[:, 1]
        + 0.9 * x[:, 2] * x[:, 3]
        + 0.7 * np.abs(x[:, 4])
        + 0.6 * (segment == "d")
    )
    p = 1 / (1 + np.exp(-(_intercept(signal, positive_share) + signal)))
    y = (rng.random(rows) < p).astype(np.int64)
    return pl.DataFrame({**{f"x{i}": x[:, i] for i in range(6)}, "segment": segment, "y": y})
