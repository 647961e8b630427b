"""Decision thresholds of binary classifiers, and labels from scores of any number of
classes."""

from __future__ import annotations

import numpy as np


def labels_at(scores: np.ndarray, threshold: float) -> np.ndarray:
    """0/1 labels of P(positive) at ``threshold``, or for rows x K class probabilities the
    index of the most probable class (the first of equals)."""
    if np.ndim(scores) == 2:
        return np.argmax(scores, axis=1).astype(np.int64)
    return (np.asarray(scores) >= threshold).astype(np.int8)


def choose_threshold(y_true: np.ndarray, scores: np.ndarray, metric: str = "f1") -> float:
    """The score threshold (label 1 at scores >= it) maximising the label metric ``metric``
    on validation rows (never on test); the first of equal thresholds in score order. Scores
    of K classes (rows x K) have no threshold: their label is the most probable class."""
    if np.ndim(scores) == 2:
        return 0.5
    if metric == "f1":
        from sklearn.metrics import precision_recall_curve

        precision, recall, thresholds = precision_recall_curve(y_true, scores)
        f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
        return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5
    if len(scores) == 0:
        return 0.5
    # Every distinct score as a threshold, from the highest down: the confusion counts of
    # labelling the rows scored at or above it positive.
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    ordered, y = np.asarray(scores, dtype=float)[order], np.asarray(y_true, dtype=float)[order]
    ends = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])
    tp, fp = np.cumsum(y)[ends], np.cumsum(1 - y)[ends]
    positives, negatives = y.sum(), len(y) - y.sum()
    fn, tn = positives - tp, negatives - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        value = {
            "accuracy": (tp + tn) / len(y),
            "balanced_accuracy": np.nanmean(np.stack([tp / (tp + fn), tn / (tn + fp)]), axis=0),
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
        }[metric]
    if np.all(np.isnan(value)):  # e.g. recall of rows without a positive
        return 0.5
    return float(ordered[ends][int(np.nanargmax(value))])
