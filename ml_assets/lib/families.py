"""The model-family registry: what each name under a spec's `candidates` trains.

A family is its settings class and tasks (``spec.FAMILY_SETTINGS``) plus, here, how it is
trained: ``tabular`` fits a model on prepared train/validation rows, ``forecaster`` builds an
unfitted forecaster that the forecasting task backtests and fits. Adding a family means a
settings class and a ``FAMILY_SETTINGS`` entry in spec.py, a trainer, and one entry here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ml_assets.lib import cross_validation, forecasters, imbalance, lightgbm_search, multiclass
from ml_assets.lib import models as model_lib
from ml_assets.lib.forecasters import Forecaster
from ml_assets.lib.metrics import Metric
from ml_assets.lib.models import Model, TrainingData
from ml_assets.lib.spec import FAMILY_SETTINGS, MLSpec

TabularTrainer = Callable[[TrainingData, Any, Metric], Model]
ForecasterBuilder = Callable[[MLSpec, Any], Forecaster]


class UnknownFamilyError(ValueError):
    """A family that is not registered, or not for the spec's task."""


@dataclass(frozen=True)
class Family:
    name: str
    library: str  # the library that fits it, shown as the candidate asset's kind
    tabular: TabularTrainer | None = None
    forecaster: ForecasterBuilder | None = None
    # Whether it can weight the classes of a target of more than two (class_weight).
    weighs_many_classes: bool = True

    @property
    def tasks(self) -> tuple[str, ...]:
        return FAMILY_SETTINGS[self.name][1]


def fit_glm(data: TrainingData, cfg: Any) -> Model:
    """The spec's GLM on ``data``: multinomial for more than two classes, else statsmodels'
    GLM of the family ``models.glm_family`` names."""
    if model_lib.glm_family(data, cfg) == "multinomial":
        return multiclass.train_multinomial(data)
    return model_lib.train_glm(data, cfg)


def _glm(data: TrainingData, cfg: Any, primary: Metric) -> Model:
    """The GLM's fit does not depend on the metric; with folds, it is scored on each."""
    model = fit_glm(data, cfg)
    cv = cross_validation.cv_rows(data)
    if cv is None:
        return model
    oof = cross_validation.cross_validate(cv, lambda part: fit_glm(part, cfg))
    return cross_validation.attach(model, oof, data.spec.threshold_metric)


REGISTRY: dict[str, Family] = {
    f.name: f
    for f in (
        Family("glm", "statsmodels", tabular=_glm, weighs_many_classes=False),
        Family("ets", "statsmodels", forecaster=forecasters.ets),
        Family("sarimax", "statsmodels", forecaster=forecasters.sarimax),
        Family("prophet", "prophet", forecaster=forecasters.prophet),
        Family(
            "lightgbm",
            "lightgbm",
            tabular=lightgbm_search.train_lightgbm,
            forecaster=forecasters.lightgbm,
        ),
    )
}


def family(name: str, task: str) -> Family:
    """The registered family ``name`` for ``task``; anything else is an error naming the
    families that are."""
    found = REGISTRY.get(name)
    if found is None or task not in found.tasks:
        known = [f for f, entry in REGISTRY.items() if task in entry.tasks]
        raise UnknownFamilyError(
            f"model family '{name}' is not available for task '{task}'; choose from {known}"
        )
    return found


def forecaster(spec: MLSpec, name: str) -> Forecaster:
    """An unfitted candidate forecaster of family ``name`` with the spec's settings."""
    builder = family(name, spec.task).forecaster
    assert builder is not None, f"family '{name}' serves forecasting but builds no forecaster"
    return builder(spec, spec.candidates.config(name))


def train_tabular(spec: MLSpec, name: str, data: TrainingData, primary: Metric) -> Model:
    """A candidate of family ``name`` fitted on ``data`` with the spec's settings; with
    ``class_weight: auto`` and a rare class, fitted unweighted and balanced and the one with
    the better selection score kept (both scores in its params)."""
    found = family(name, spec.task)
    trainer = found.tabular
    assert trainer is not None, f"family '{name}' serves task '{spec.task}' but has no trainer"
    cfg = spec.candidates.config(name)
    options = imbalance.weighting_options(spec, data.y_train, data.n_classes)
    if options == ["spec"]:
        return trainer(data, cfg, primary)
    if "balanced" in options and data.classes is not None and not found.weighs_many_classes:
        model = trainer(
            dataclasses.replace(data, spec=spec.model_copy(update={"class_weight": "none"})),
            cfg,
            primary,
        )
        model.params = {
            **model.params,
            "class_weight": f"none ({name} takes no class weights with {data.n_classes} classes)",
        }
        return model
    tried: list[tuple[float, Model]] = []
    for option in options:
        weighted = spec.model_copy(update={"class_weight": option})
        model = trainer(dataclasses.replace(data, spec=weighted), cfg, primary)
        tried.append((_selection_score(model, data, primary), model))
    best = max(tried, key=lambda t: t[0])[1]  # the first (unweighted) of equals
    scores = {o: round(s, 6) for o, (s, _) in zip(options, tried, strict=True)}
    best.params = {**best.params, "class_weight_tried": scores}
    best.params.setdefault("class_weight", "none")
    return best


def _selection_score(model: Model, data: TrainingData, primary: Metric) -> float:
    """The score that chooses between candidates, larger is better: the fold mean with
    cross-validation, else the validation split's."""
    value = cross_validation.selection_metrics(model, data, [primary.name])[0][primary.name]
    return value if primary.greater_is_better else -value
