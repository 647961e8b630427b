"""Baselines and candidate models behind one interface.

Every model maps a polars frame of feature columns to one number per row: the probability of
the positive class for classification, the expected value for regression. The evaluation,
report and promotion code only ever see that interface, so forecasting models can join it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from ml_assets.lib.data import binary_target, feature_columns, positive_class
from ml_assets.lib.metrics import get_metric, score
from ml_assets.lib.preprocess import Preprocessor
from ml_assets.lib.spec import GLMCandidate, MLSpec
from ml_assets.lib.validation import categorical_columns

Role = Literal["baseline", "candidate"]


@dataclass(frozen=True)
class TrainingData:
    """Train and validation rows with encoded targets. The test split never gets here."""

    spec: MLSpec
    train: pl.DataFrame
    validation: pl.DataFrame
    features: list[str]
    categorical: list[str]
    positive: object | None
    y_train: np.ndarray
    y_validation: np.ndarray

    @property
    def is_count(self) -> bool:
        y = self.y_train
        return bool(np.all(y >= 0) and np.all(np.equal(np.mod(y, 1), 0)))


def prepare(spec: MLSpec, train: pl.DataFrame, validation: pl.DataFrame) -> TrainingData:
    features = feature_columns(spec, train)
    cats = [c for c in categorical_columns(spec, train) if c in features]
    positive = positive_class(train[spec.target]) if spec.task == "classification" else None
    return TrainingData(
        spec,
        train,
        validation,
        features,
        cats,
        positive,
        encode_target(spec, train, positive),
        encode_target(spec, validation, positive),
    )


def with_validation_rows(data: TrainingData) -> TrainingData:
    """The rows of a final refit: train and validation together (the test split never)."""
    return dataclasses.replace(
        data,
        train=pl.concat([data.train, data.validation], how="vertical_relaxed"),
        y_train=np.concatenate([data.y_train, data.y_validation]),
    )


def encode_target(spec: MLSpec, frame: pl.DataFrame, positive: object | None) -> np.ndarray:
    if spec.task == "classification":
        return binary_target(frame[spec.target], positive).astype(np.float64)
    return frame[spec.target].cast(pl.Float64).to_numpy()


@dataclass
class Model(ABC):
    """A fitted model: ``predict`` gives P(positive) or the expected value per row."""

    name: str
    family: str
    role: Role
    task: str
    features: list[str]
    positive: object | None = None
    params: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5
    # Scores of the validation rows, kept by a trainer that computed them anyway, so that
    # validation_metrics need not predict again; a cache, never pickled with the model.
    validation_scores: np.ndarray | None = field(default=None, repr=False, compare=False)
    # With cross-validation: each fold's held-out scores (cross_validation.OutOfFold), from
    # which the task computes the selection metrics; a cache like validation_scores.
    out_of_fold: Any = field(default=None, repr=False, compare=False)

    @abstractmethod
    def predict(self, frame: pl.DataFrame) -> np.ndarray: ...

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "validation_scores": None, "out_of_fold": None}

    def importance(self, frame: pl.DataFrame) -> pl.DataFrame | None:
        """Feature importance on ``frame`` (TreeSHAP, coefficients), or None for baselines."""
        return None

    def labels(self, scores: np.ndarray) -> np.ndarray:
        return (scores >= self.threshold).astype(np.int8)


@dataclass
class ConstantModel(Model):
    """Naive baseline: predicts one number learned from the training target."""

    value: float = 0.0

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        return np.full(frame.height, self.value, dtype=np.float64)


def train_baselines(data: TrainingData) -> list[Model]:
    y = data.y_train
    common = {
        "role": "baseline",
        "task": data.spec.task,
        "features": data.features,
        "positive": data.positive,
    }
    if data.spec.task == "classification":
        prior = float(y.mean())
        return [
            ConstantModel("prior", "constant", value=prior, params={"strategy": "prior"}, **common),
            ConstantModel(
                "majority",
                "constant",
                value=float(prior >= 0.5),
                params={"strategy": "majority"},
                **common,
            ),
        ]
    return [
        ConstantModel(
            "mean", "constant", value=float(y.mean()), params={"strategy": "mean"}, **common
        ),
        ConstantModel(
            "median", "constant", value=float(np.median(y)), params={"strategy": "median"}, **common
        ),
    ]


def choose_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold maximising F1 on validation rows (never on test)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5


@dataclass
class GLMModel(Model):
    """statsmodels GLM (Logit for binary targets, Poisson for counts, Gaussian otherwise)."""

    prep: Preprocessor | None = None
    coefficients: pl.DataFrame | None = None
    result: Any = None

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        assert self.prep is not None
        return np.asarray(self.result.predict(self.prep.design(frame)), dtype=np.float64)

    def importance(self, frame: pl.DataFrame) -> pl.DataFrame | None:
        return self.coefficients


def glm_family(data: TrainingData, cfg: GLMCandidate) -> str:
    if cfg.family != "auto":
        return cfg.family
    if data.spec.task == "classification":
        return "binomial"
    return "poisson" if data.is_count else "gaussian"


def train_glm(data: TrainingData, cfg: GLMCandidate) -> GLMModel:
    import statsmodels.api as sm

    family_name = glm_family(data, cfg)
    family = {
        "binomial": sm.families.Binomial(),
        "poisson": sm.families.Poisson(),
        "gaussian": sm.families.Gaussian(),
    }[family_name]
    prep = Preprocessor.fit(data.train, data.features, data.categorical)
    result = sm.GLM(data.y_train, prep.design(data.train), family=family).fit()
    validation_scores = np.asarray(result.predict(prep.design(data.validation)), dtype=np.float64)
    params: dict[str, Any] = {"family": family_name, "standardized": True}
    if data.spec.split.refit:  # the same model on train + validation rows
        refit = with_validation_rows(data)
        prep = Preprocessor.fit(refit.train, data.features, data.categorical)
        result = sm.GLM(refit.y_train, prep.design(refit.train), family=family).fit()
        params |= {"refit": "train+validation", "refit_rows": refit.train.height}
    names = prep.design_names()
    coefficients = pl.DataFrame(
        {
            "feature": names,
            "coefficient": np.asarray(result.params),
            "std_err": np.asarray(result.bse),
            "p_value": np.asarray(result.pvalues),
        }
    ).with_columns(pl.col("coefficient").abs().alias("importance"))
    result.remove_data()
    model = GLMModel(
        f"glm_{family_name}",
        "statsmodels_glm",
        "candidate",
        data.spec.task,
        data.features,
        data.positive,
        params,
        prep=prep,
        coefficients=coefficients,
        result=result,
    )
    model.validation_scores = validation_scores  # of the fit on train: honest on validation
    if data.spec.task == "classification":
        model.threshold = choose_threshold(data.y_validation, validation_scores)
    return model


@dataclass
class LightGBMModel(Model):
    """A LightGBM booster with its training-fitted category coding."""

    prep: Preprocessor | None = None
    booster: Any = None

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        assert self.prep is not None
        return np.asarray(self.booster.predict(self.prep.codes(frame)), dtype=np.float64)

    def importance(self, frame: pl.DataFrame) -> pl.DataFrame | None:
        assert self.prep is not None
        contrib = self.booster.predict(self.prep.codes(frame), pred_contrib=True)
        shap = np.abs(np.asarray(contrib)[:, :-1]).mean(axis=0)
        return pl.DataFrame({"feature": self.prep.features, "importance": shap}).sort(
            "importance", descending=True
        )


def validation_metrics(
    model: Model, data: TrainingData, metric_names: list[str]
) -> dict[str, float]:
    """Every spec metric of ``model`` on the validation split (for selection and MLflow)."""
    scores = model.validation_scores
    if scores is None or len(scores) != data.validation.height:
        scores = model.predict(data.validation)
    out = {}
    for name in metric_names:
        metric = get_metric(name)
        y = model.labels(scores) if metric.kind == "label" else scores
        out[name] = score(metric, data.y_validation, y)
    return out
