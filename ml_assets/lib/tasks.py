"""The task seam: one object per kind of problem, holding everything the pipeline does
differently for it (feature shaping, splits and their checks, baselines, candidates, how the
current champion is made comparable, evaluation, scoring).

The Dagster assets call these methods and never test ``spec.task`` themselves. A new task type
is a new ``Task`` subclass, its entry in ``TASKS`` and its spec section.
"""

from __future__ import annotations

import dataclasses
import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import polars as pl

from ml_assets.lib import cross_validation as cv_lib
from ml_assets.lib import evaluation as eval_lib
from ml_assets.lib import families
from ml_assets.lib import forecast_eval as fe_lib
from ml_assets.lib import forecasters as fc_lib
from ml_assets.lib import gate as gate_lib
from ml_assets.lib import models as model_lib
from ml_assets.lib import splits as split_lib
from ml_assets.lib import timeseries as ts_lib
from ml_assets.lib.data import ROW_ID, SPLIT, class_labels
from ml_assets.lib.metrics import get_metric
from ml_assets.lib.models import Model
from ml_assets.lib.multiclass import top_class_confidence
from ml_assets.lib.records import Trained
from ml_assets.lib.spec import MLSpec

REFERENCE_ROWS = 5000  # training rows kept with a candidate as the drift reference


@dataclass(frozen=True)
class Fitted:
    """A model fitted on the train (and, for tuning, validation) rows, before logging."""

    model: Model
    validation: dict[str, float]
    example: pl.DataFrame  # rows for the logged signature and input example
    reference: pl.DataFrame | None = None  # training-row sample for drift monitoring
    seen_until: str | None = None  # the latest time among the rows the model learned from
    backtest: pl.DataFrame | None = None  # forecasting: per-fold forecasts behind `validation`
    cv: pl.DataFrame | None = None  # tabular with folds: per-fold metrics behind `validation`


@dataclass(frozen=True)
class Comparison:
    """The current champion made ready to be scored beside the candidate, or why not."""

    model: Model | None
    criteria: tuple[gate_lib.Criterion, ...] = ()
    problem: str | None = None  # for the run's log when the champion cannot be compared


def _baseline(index: int, data: model_lib.TrainingData) -> Model:
    return model_lib.train_baselines(data)[index]


def proba_column(label: object) -> str:
    """The scored rows' column of a class's probability."""
    return f"proba_{label}"


def _classes_of(spec: MLSpec, train: pl.DataFrame) -> list[object] | None:
    """A multiclass target's labels as a model trained on ``train`` has them (else None)."""
    if spec.task != "classification":
        return None
    labels = class_labels(train[spec.target])
    return labels if len(labels) > 2 else None


def rows_of(splits: pl.DataFrame, split: str) -> pl.DataFrame:
    return splits.filter(pl.col(SPLIT) == split)


class Task(ABC):
    """What differs between kinds of problems."""

    forecasts: ClassVar[bool] = False  # produces the next periods (a `forecast` asset)
    checks_time_index: ClassVar[bool] = False  # the raw data needs a regular time grid
    split_check_names: ClassVar[tuple[str, ...]]

    def shape_features(self, spec: MLSpec, frame: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
        """The features frame as the splits need it, and metadata about what was done."""
        return frame, {}

    @abstractmethod
    def assign_splits(self, spec: MLSpec, features: pl.DataFrame) -> pl.DataFrame: ...

    @abstractmethod
    def split_checks(self, spec: MLSpec, splits: pl.DataFrame) -> list[split_lib.SplitCheck]:
        """One result per name in ``split_check_names``, in that order."""

    @abstractmethod
    def fit_baselines(self, spec: MLSpec, splits: pl.DataFrame) -> list[Fitted]: ...

    @abstractmethod
    def fit_candidate(self, spec: MLSpec, splits: pl.DataFrame, family: str) -> Fitted: ...

    @abstractmethod
    def compare_champion(
        self, spec: MLSpec, version: str, model: Model, seen_until: str | None, splits: Any
    ) -> Comparison: ...

    @abstractmethod
    def evaluate(
        self,
        spec: MLSpec,
        splits: pl.DataFrame,
        selected: Trained,
        baselines: list[Trained],
        best_baseline: str,
        champion: Model | None,
    ) -> eval_lib.Evaluation: ...

    def score(self, spec: MLSpec, model: Model, version: str, rows: pl.DataFrame) -> pl.DataFrame:
        raise NotImplementedError(f"task '{spec.task}' does not score incoming rows")

    def scores_of(self, model: Model, scored: pl.DataFrame) -> np.ndarray:
        """The model's scores as ``score`` wrote them into ``scored`` rows."""
        raise NotImplementedError("this task does not score incoming rows")


class Tabular(Task):
    """Classification and regression on rows: random, stratified, group or temporal splits."""

    split_check_names = (
        "splits_disjoint",
        "splits_groups_disjoint",
        "splits_proportions",
        "splits_time_order",
    )

    def assign_splits(self, spec: MLSpec, features: pl.DataFrame) -> pl.DataFrame:
        return split_lib.assign_splits(spec, features)

    def split_checks(self, spec: MLSpec, splits: pl.DataFrame) -> list[split_lib.SplitCheck]:
        return [
            split_lib.check_disjoint(splits),
            split_lib.check_groups_disjoint(spec, splits),
            split_lib.check_proportions(spec, splits),
            split_lib.check_time_order(spec, splits),
        ]

    @staticmethod
    def _prepare(spec: MLSpec, splits: pl.DataFrame) -> model_lib.TrainingData:
        return model_lib.prepare(spec, rows_of(splits, "train"), rows_of(splits, "validation"))

    @staticmethod
    def _fitted(spec: MLSpec, model: Model, data: model_lib.TrainingData) -> Fitted:
        seen = None
        if spec.time_column:  # later evaluations check this model never saw their test period
            column = spec.time_column
            seen = str(max(data.train[column].max(), data.validation[column].max()))
        reference = None
        if model.role == "candidate":
            rows = data.train.sample(min(data.train.height, REFERENCE_ROWS), seed=spec.split.seed)
            reference = rows.select(model.features)
        validation, table = cv_lib.selection_metrics(model, data, spec.all_metrics)
        return Fitted(model, validation, data.train, reference, seen, cv=table)

    def fit_baselines(self, spec: MLSpec, splits: pl.DataFrame) -> list[Fitted]:
        data = self._prepare(spec, splits)
        models = model_lib.train_baselines(data)
        cv = cv_lib.cv_rows(data)
        if cv is not None:  # scored on the same folds as the candidates
            for i, model in enumerate(models):
                cv_lib.attach(model, cv_lib.cross_validate(cv, functools.partial(_baseline, i)))
        return [self._fitted(spec, m, data) for m in models]

    def fit_candidate(self, spec: MLSpec, splits: pl.DataFrame, family: str) -> Fitted:
        data = self._prepare(spec, splits)
        model = families.train_tabular(spec, family, data, get_metric(spec.primary_metric))
        return self._fitted(spec, model, data)

    def compare_champion(
        self, spec: MLSpec, version: str, model: Model, seen_until: str | None, splits: Any
    ) -> Comparison:
        test = rows_of(splits, "test")
        if spec.time_column and seen_until is not None:
            test_start = test[spec.time_column].min()
            if gate_lib.saw_period(seen_until, test_start):
                return Comparison(
                    None,
                    (gate_lib.champion_saw_test_period(version, seen_until, test_start),),
                    f"current champion v{version} was trained on data up to {seen_until}, "
                    f"which reaches into this test split (from {test_start})",
                )
        classes = _classes_of(spec, rows_of(splits, "train"))
        if model.task == spec.task and model.classes != classes:
            said = f"classes {model.classes}" if model.classes else "two classes"
            now = f"classes {classes}" if classes else "two classes"
            return Comparison(
                None,
                (
                    gate_lib.champion_not_comparable(
                        version, f"it predicts {said}, the target now has {now}"
                    ),
                ),
                f"current champion v{version} predicts {said}; the target now has {now}",
            )
        champion = dataclasses.replace(model, name=f"champion_v{version}")
        try:  # a schema the champion cannot read fails on any rows; evaluate scores them all
            champion.predict(test.head(1000))
        except (pl.exceptions.PolarsError, KeyError, ValueError) as exc:
            return Comparison(
                None,
                (gate_lib.champion_not_comparable(version, str(exc)[:300]),),
                f"current champion v{version} cannot score this data: {exc}",
            )
        return Comparison(champion)

    def evaluate(
        self,
        spec: MLSpec,
        splits: pl.DataFrame,
        selected: Trained,
        baselines: list[Trained],
        best_baseline: str,
        champion: Model | None,
    ) -> eval_lib.Evaluation:
        test = rows_of(splits, "test")
        models = [b.model for b in baselines]
        return eval_lib.evaluate(spec, test, selected.model, models, best_baseline, champion)

    def score(self, spec: MLSpec, model: Model, version: str, rows: pl.DataFrame) -> pl.DataFrame:
        """Incoming rows with the model's score (and label, for a classifier) and version.
        With K classes: one ``proba_<class>`` column per class, ``score`` the top class's
        probability and ``predicted_label`` that class."""
        scores = model.predict(rows)
        version_column = pl.lit(version).alias("model_version")
        if model.classes is not None:
            labels = model.labels(scores)
            return rows.with_columns(
                *[pl.Series(proba_column(c), scores[:, k]) for k, c in enumerate(model.classes)],
                pl.Series("score", top_class_confidence(scores)),
                pl.Series("predicted_label", model.class_names(labels)),
                version_column,
            )
        out = rows.with_columns(pl.Series("score", scores), version_column)
        if spec.task == "classification":
            out = out.with_columns(pl.Series("predicted_label", model.labels(scores)))
        return out

    def scores_of(self, model: Model, scored: pl.DataFrame) -> np.ndarray:
        if model.classes is None:
            return scored["score"].to_numpy()
        return scored.select([proba_column(c) for c in model.classes]).to_numpy()


class Forecasting(Task):
    """One regular time series: rolling-origin backtests, a final holdout, future periods."""

    forecasts = True
    checks_time_index = True
    split_check_names = ("splits_disjoint", "splits_time_order", "backtest_before_origin")

    def shape_features(self, spec: MLSpec, frame: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
        series = ts_lib.regularize(spec, frame.drop(ROW_ID)).with_row_index(ROW_ID)
        return series, {"imputed_steps": int(series[ts_lib.IMPUTED].sum())}

    def assign_splits(self, spec: MLSpec, features: pl.DataFrame) -> pl.DataFrame:
        return ts_lib.assign_forecast_splits(spec, features)

    def split_checks(self, spec: MLSpec, splits: pl.DataFrame) -> list[split_lib.SplitCheck]:
        ok, detail, meta = ts_lib.check_folds_before_origin(spec, splits)
        return [
            split_lib.check_disjoint(splits),
            split_lib.check_time_order(spec, splits),
            split_lib.SplitCheck("backtest_before_origin", ok, detail, dict(meta)),
        ]

    @staticmethod
    def history(spec: MLSpec, splits: pl.DataFrame, split: str = "train") -> pl.DataFrame:
        assert spec.time_column is not None
        return rows_of(splits, split).drop(SPLIT).sort(spec.time_column)

    def _fitted(self, spec: MLSpec, splits: pl.DataFrame, model: fc_lib.Forecaster) -> Fitted:
        """Rolling-origin backtest of the model, then a fit on every row before the holdout."""
        series = self.history(spec, splits)
        backtest = fc_lib.backtest(model, series, ts_lib.backtest_folds(spec, series.height))
        fitted = model.fit(series)
        validation = fe_lib.validation_metrics(backtest, spec.all_metrics)
        return Fitted(fitted, validation, fitted.future_frame(5), backtest=backtest)

    def fit_baselines(self, spec: MLSpec, splits: pl.DataFrame) -> list[Fitted]:
        return [self._fitted(spec, splits, m) for m in fc_lib.baselines(spec)]

    def fit_candidate(self, spec: MLSpec, splits: pl.DataFrame, family: str) -> Fitted:
        return self._fitted(spec, splits, families.forecaster(spec, family))

    def compare_champion(
        self, spec: MLSpec, version: str, model: Model, seen_until: str | None, splits: Any
    ) -> Comparison:
        """The champion refit on the same history as the candidate, to forecast the holdout."""
        try:
            assert isinstance(model, fc_lib.Forecaster)
            refit = model.fit(self.history(spec, splits))
        except (AssertionError, ValueError, KeyError, pl.exceptions.PolarsError) as exc:
            return Comparison(
                None,
                (gate_lib.champion_not_comparable(version, str(exc)[:300]),),
                f"current champion v{version} cannot be refit: {exc}",
            )
        return Comparison(dataclasses.replace(refit, name=f"champion_v{version}"))

    def evaluate(
        self,
        spec: MLSpec,
        splits: pl.DataFrame,
        selected: Trained,
        baselines: list[Trained],
        best_baseline: str,
        champion: Model | None,
    ) -> eval_lib.Evaluation:
        assert champion is None or isinstance(champion, fc_lib.Forecaster)
        return fe_lib.evaluate_forecast(
            spec,
            self.history(spec, splits),
            self.history(spec, splits, "test"),
            (selected.model, selected.backtest),  # type: ignore[arg-type]
            [(b.model, b.backtest) for b in baselines],  # type: ignore[misc]
            best_baseline,
            champion,
        )


TASKS: dict[str, Task] = {
    "classification": Tabular(),
    "regression": Tabular(),
    "forecasting": Forecasting(),
}


def task_for(spec: MLSpec) -> Task:
    return TASKS[spec.task]
