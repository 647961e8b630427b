"""Performance on the rows scored in production, as their labels arrive: the metric, with its
CI, on the labelled rows only, and only when there are enough of them to mean anything."""

from __future__ import annotations

import numpy as np
import polars as pl

from ml_assets.lib.evaluation import estimate
from ml_assets.lib.metrics import Estimate, Metric, get_metric
from ml_assets.lib.models import Model, target_of
from ml_assets.lib.spec import MLSpec

MIN_LABELS = 30


def realized_performance(
    spec: MLSpec, rows: pl.DataFrame, model: Model, scores: np.ndarray, min_labels: int = MIN_LABELS
) -> Estimate | None:
    """The model's primary metric on the rows whose labels have arrived, with a bootstrap CI;
    None when too few are labelled (or, for ranking metrics, only one class is)."""
    metric = get_metric(spec.primary_metric)
    labelled = labelled_rows(spec, rows, metric, min_labels)
    if labelled is None:
        return None
    y = target_of(spec, rows.filter(pl.Series(labelled)), model)
    return estimate(spec, metric, y, metric_input(metric, model, scores[labelled]))


def labelled_rows(
    spec: MLSpec, rows: pl.DataFrame, metric: Metric, min_labels: int
) -> np.ndarray | None:
    """Which of ``rows`` have their label; None when fewer than ``min_labels`` do (or, for a
    ranking metric, when they all share one label): too few for the metric to mean anything."""
    if spec.target not in rows.columns:
        return None
    labelled = rows[spec.target].is_not_null().to_numpy()
    if labelled.sum() < min_labels:
        return None
    if metric.kind == "score" and rows.filter(pl.Series(labelled))[spec.target].n_unique() < 2:
        return None
    return labelled


def metric_input(metric: Metric, model: Model, scores: np.ndarray) -> np.ndarray:
    """What ``metric`` reads from ``model``'s scores: its labels, or the scores themselves."""
    return model.labels(scores) if metric.kind == "label" else scores
