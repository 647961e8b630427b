"""Cross-validated selection of tabular candidates (``split.cv_folds``).

With k folds, every candidate (and baseline) is scored on k folds of the train + validation
rows, each fold fitted only on rows outside it (``folds.cv_folds``: whole groups, earlier
times, class shares, as the spec's split says). The mean over the folds chooses the candidate
and, for LightGBM, its hyperparameters; the spread says how far to trust the choice. The test
split is never among these rows.

Scores of the rows a fold holds out ("out of fold") are kept with the model, not pickled, so
that the task can turn them into per-fold metrics; a classifier's decision threshold is chosen
on all of them together.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import polars as pl

from ml_assets.lib import folds as fold_lib
from ml_assets.lib.folds import Fold
from ml_assets.lib.metrics import get_metric, score
from ml_assets.lib.models import (
    Model,
    TrainingData,
    validation_metrics,
    with_validation_rows,
)
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.thresholds import choose_threshold

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Model)

AUTO_FOLDS = 5
AUTO_MAX_ROWS = 50_000  # unset cv_folds: cross-validate below this many train + validation rows


def fold_count(spec: MLSpec, rows: int) -> int:
    """The folds to use for ``rows`` train + validation rows; below 2, no cross-validation."""
    k = spec.split.cv_folds
    if k is None:
        return AUTO_FOLDS if rows < AUTO_MAX_ROWS else 0
    return k


def fold_kind(spec: MLSpec) -> str:
    """How the folds are made, in words for the run's params and the report."""
    if spec.split_strategy == "temporal" and spec.time_column:
        return f"time-ordered on '{spec.time_column}' (expanding window)"
    if spec.split.group_columns:
        return f"grouped by {spec.split.group_columns}"
    return "stratified by class" if spec.split_strategy == "stratified" else "random"


@dataclass(frozen=True)
class CVRows:
    """Train + validation rows as one frame, and the folds cut from it."""

    rows: TrainingData  # ``rows.train`` holds train + validation; ``rows.validation`` unused
    folds: list[Fold]

    def fold(self, fold: Fold) -> TrainingData:
        """The fold as training data: fitted on its fit rows, scored on its held-out rows.
        Its spec asks for no refit: a fold's model is only ever scored."""
        data, spec = self.rows, self.rows.spec
        return dataclasses.replace(
            data,
            spec=spec.model_copy(update={"split": spec.split.model_copy(update={"refit": False})}),
            train=data.train[fold.fit],
            validation=data.train[fold.score],
            y_train=data.y_train[fold.fit],
            y_validation=data.y_train[fold.score],
        )


def cv_rows(data: TrainingData) -> CVRows | None:
    """The folds for ``data``'s spec and size, or None when selection uses the validation
    split alone. Folds that cannot score a model (no rows to fit or to score, one class only)
    are an error when the spec asked for them, and a logged fallback to the validation split
    when the default chose them."""
    rows, spec = with_validation_rows(data), data.spec
    k = fold_count(spec, rows.train.height)
    if k < 2:
        return None
    try:
        made = fold_lib.cv_folds(spec, rows.train, k)
        problem = _unusable(spec, rows.y_train, made)
    except ValueError as exc:
        made, problem = [], str(exc)
    if problem is None:
        return CVRows(rows, made)
    if spec.split.cv_folds is None:
        log.warning(
            "spec '%s': %d default folds do not work here (%s); candidates are chosen on the "
            "validation split (set split.cv_folds to choose)",
            spec.name,
            k,
            problem,
        )
        return None
    raise ValueError(
        f"spec '{spec.name}': split.cv_folds: {k} cannot be made from "
        f"{rows.train.height} train + validation rows: {problem}; use fewer folds, or 0"
    )


def _unusable(spec: MLSpec, y: np.ndarray, made: list[Fold]) -> str | None:
    """Why a fold cannot fit or score a model, or None."""
    for fold in made:
        if len(fold.fit) == 0 or len(fold.score) == 0:
            side = "fit on" if len(fold.fit) == 0 else "score"
            return f"fold {fold.index + 1} has no rows to {side}"
        if spec.task == "classification":
            for side, rows in (("fitted", fold.fit), ("held-out", fold.score)):
                if len(np.unique(y[rows])) < 2:
                    return f"fold {fold.index + 1}'s {side} rows hold one class only"
            every = len(np.unique(y))
            if every > 2 and len(np.unique(y[fold.fit])) < every:  # K classes: all to fit
                return f"fold {fold.index + 1}'s fitted rows miss one of the {every} classes"
    return None


@dataclass(frozen=True)
class OutOfFold:
    """Each fold's held-out targets and the scores a model fitted without them gave them."""

    kind: str
    folds: list[Fold]
    y: list[np.ndarray]
    scores: list[np.ndarray]

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.y), np.concatenate(self.scores)


def out_of_fold(cv: CVRows, scores: list[np.ndarray]) -> OutOfFold:
    y = [cv.rows.y_train[f.score] for f in cv.folds]
    return OutOfFold(fold_kind(cv.rows.spec), cv.folds, y, scores)


def cross_validate(cv: CVRows, fit: Callable[[TrainingData], Model]) -> OutOfFold:
    """``fit`` on each fold's fit rows, scoring its held-out rows."""
    scores = []
    for fold in cv.folds:
        part = cv.fold(fold)
        model = fit(part)
        cached = model.validation_scores
        ok = cached is not None and len(cached) == part.validation.height
        scores.append(cached if ok else model.predict(part.validation))  # type: ignore[arg-type]
    return out_of_fold(cv, scores)


def attach(model: M, oof: OutOfFold, threshold_metric: str = "f1") -> M:
    """``model`` with its out-of-fold scores, the fold settings in its params and, for a
    classifier, the threshold chosen for ``threshold_metric`` on every out-of-fold score."""
    model.out_of_fold = oof
    model.params = {**model.params, "cv_folds": len(oof.folds), "cv_folds_made": oof.kind}
    model.validation_scores = None  # the validation split's scores would not be of this choice
    if model.task == "classification" and model.role == "candidate":
        model.threshold = choose_threshold(*oof.pooled(), threshold_metric)
    return model


def fold_table(model: Model, metric_names: list[str]) -> pl.DataFrame:
    """One row per fold: its rows fitted on and scored, and every metric on the scored rows
    (label metrics at the model's threshold)."""
    oof = model.out_of_fold
    assert isinstance(oof, OutOfFold)
    rows = []
    for fold, y, scores in zip(oof.folds, oof.y, oof.scores, strict=True):
        row: dict[str, float | int] = {
            "fold": fold.index + 1,
            "fit_rows": len(fold.fit),
            "scored_rows": len(fold.score),
        }
        for name in metric_names:
            metric = get_metric(name)
            row[name] = score(metric, y, model.labels(scores) if metric.kind == "label" else scores)
        rows.append(row)
    return pl.DataFrame(rows)


def fold_means(table: pl.DataFrame, metric_names: list[str]) -> dict[str, float]:
    return {name: float(table[name].mean()) for name in metric_names}  # type: ignore[arg-type]


def selection_metrics(
    model: Model, data: TrainingData, metric_names: list[str]
) -> tuple[dict[str, float], pl.DataFrame | None]:
    """The metrics that choose between models: the fold means (with the fold table) when the
    model was cross-validated, else its validation split's (and None)."""
    if model.out_of_fold is None:
        return validation_metrics(model, data, metric_names), None
    table = fold_table(model, metric_names)
    return fold_means(table, metric_names), table


def selection_table(primary: str, tables: dict[str, tuple[str, pl.DataFrame]]) -> pl.DataFrame:
    """Per model (name -> (role, fold table)): the primary metric on each fold, their mean
    and standard deviation, models in the order given."""
    rows = []
    for name, (role, table) in tables.items():
        values = table[primary].to_list()
        rows.append(
            {
                "model": name,
                "role": role,
                **{f"fold_{i + 1}": round(v, 4) for i, v in enumerate(values)},
                "mean": round(float(np.mean(values)), 4),
                "std": round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4),
            }
        )
    return pl.DataFrame(rows)
