"""Record types passed between training, evaluation and promotion; importable without MLflow."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ml_assets.lib.models import Model


@dataclass(frozen=True)
class LoggedModel:
    """Where a model was logged: its MLflow run and model URI (None for a baseline, whose
    run records params and metrics only)."""

    run_id: str
    model_uri: str | None
    experiment_id: str


@dataclass(frozen=True)
class Trained:
    """A fitted model with its MLflow run, validation metrics and training-data fingerprint."""

    model: Model
    logged: LoggedModel
    validation: dict[str, float]
    data_fingerprint: str
    backtest: pl.DataFrame | None = None  # forecasting: per-fold forecasts behind `validation`
    cv: pl.DataFrame | None = None  # tabular with folds: per-fold metrics behind `validation`
