"""A synthetic rare-event table (fraud-like: a few percent positives), for imbalance tests
and ``make bench-imbalance``.

Six numeric features and a four-level category; the label is drawn from a logistic model, its
intercept solved so that the expected positive share is the one asked for. Two shapes of risk:

- ``mixed``: a linear part, an interaction and a non-monotone term;
- ``peaked``: risk peaks at a middle value of ``x0`` (like a failure rate highest in one
  operating range), plus two linear terms. A model linear in ``x0`` cannot follow it, which is
  where class weights change what a fit gets right.
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


SHAPES = ("mixed", "peaked")


def _signal(x: np.ndarray, segment: np.ndarray, shape: str) -> np.ndarray:
    if shape == "mixed":
        return (
            1.2 * x[:, 0]
            - 0.8 * x[:, 1]
            + 0.9 * x[:, 2] * x[:, 3]
            + 0.7 * np.abs(x[:, 4])
            + 0.6 * (segment == "d")
        )
    if shape == "peaked":
        return -0.8 * (x[:, 0] - 1.5) ** 2 + 0.8 * x[:, 2] - 0.8 * x[:, 3] + 0.5 * (segment == "d")
    raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")


def rare_events(
    rows: int, positive_share: float = 0.02, seed: int = 0, shape: str = "mixed"
) -> pl.DataFrame:
    """``rows`` rows with columns x0..x5, segment, and label ``y`` (1 in about
    ``positive_share`` of them); the same arguments give the same rows."""
    if not 0 < positive_share < 1:
        raise ValueError(f"positive_share must be between 0 and 1, got {positive_share}")
    rng = np.random.default_rng([seed, 11])
    x = rng.normal(size=(rows, 6))
    segment = rng.choice(["a", "b", "c", "d"], size=rows, p=[0.4, 0.3, 0.2, 0.1])
    signal = _signal(x, segment, shape)
    p = 1 / (1 + np.exp(-(_intercept(signal, positive_share) + signal)))
    y = (rng.random(rows) < p).astype(np.int64)
    return pl.DataFrame({**{f"x{i}": x[:, i] for i in range(6)}, "segment": segment, "y": y})
