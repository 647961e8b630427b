"""Baselines and candidate models behind one interface.

Every model maps a polars frame of feature columns to one number per row: the probability of
the positive class for binary classification, the expected value for regression. With more
than two classes it maps each row to one probability per class (rows x K, in the order of
``Model.classes``, the sorted labels), and its label is the most probable class. The
evaluation, report and promotion code only ever see that interface, so forecasting models can
join it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from ml_assets.lib import compiled as compiled_lib
from ml_assets.lib.data import (
    DataError,
    binary_target,
    class_index,
    class_labels,
    feature_columns,
)
from ml_assets.lib.imbalance import ClassWeights, MulticlassWeights, class_weights
from ml_assets.lib.metrics import get_metric, score
from ml_assets.lib.preprocess import Preprocessor
from ml_assets.lib.spec import GLMCandidate, MLSpec
from ml_assets.lib.thresholds import choose_threshold, labels_at
from ml_assets.lib.validation import categorical_columns

Role = Literal["baseline", "candidate"]
REFIT_MAX_ROWS = 200_000  # unset split.refit: refit on train + validation up to this many rows


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
    # A target of more than two labels: the labels in class-index order (y is the index);
    # None for a binary (y is 0/1 for ``positive``) or regression target.
    classes: list[object] | None = None

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes is not None else 2

    @property
    def refits(self) -> bool:
        """Whether the final model is refit on train + validation (``split.refit``; unset:
        up to ``REFIT_MAX_ROWS`` of them)."""
        chosen = self.spec.split.refit
        if chosen is not None:
            return chosen
        return self.train.height + self.validation.height <= REFIT_MAX_ROWS

    @property
    def is_count(self) -> bool:
        y = self.y_train
        return bool(np.all(y >= 0) and np.all(np.equal(np.mod(y, 1), 0)))


def prepare(spec: MLSpec, train: pl.DataFrame, validation: pl.DataFrame) -> TrainingData:
    features = feature_columns(spec, train)
    cats = [c for c in categorical_columns(spec, train) if c in features]
    positive, classes = None, None
    if spec.task == "classification":
        labels = class_labels(train[spec.target])
        if len(labels) == 2:
            positive = labels[1]
        else:
            classes = labels
            if spec.fairness is not None:
                raise DataError(
                    f"spec '{spec.name}': 'fairness' compares rates at a decision threshold of "
                    f"two classes, and target '{spec.target}' has {len(labels)} {labels[:10]}; "
                    "remove the fairness section or derive a binary target"
                )
    return TrainingData(
        spec,
        train,
        validation,
        features,
        cats,
        positive,
        encode_target(spec, train, positive, classes),
        encode_target(spec, validation, positive, classes),
        classes,
    )


def with_validation_rows(data: TrainingData) -> TrainingData:
    """The rows of a final refit: train and validation together (the test split never)."""
    return dataclasses.replace(
        data,
        train=pl.concat([data.train, data.validation], how="vertical_relaxed"),
        y_train=np.concatenate([data.y_train, data.y_validation]),
    )


def class_weights_of(data: TrainingData) -> ClassWeights | MulticlassWeights | None:
    """The spec's class weights for the rows ``data`` fits on (None: unweighted)."""
    if data.spec.task != "classification":
        return None
    if data.classes is not None:
        return class_weights(data.spec, data.y_train, None, None, data.classes)
    labels = data.train[data.spec.target].drop_nulls().unique().to_list()
    negative = next((v for v in labels if v != data.positive), None)
    return class_weights(data.spec, data.y_train, data.positive, negative)


def encode_target(
    spec: MLSpec,
    frame: pl.DataFrame,
    positive: object | None,
    classes: list[object] | None = None,
) -> np.ndarray:
    """The target as models see it: 0/1 for ``positive``, the index into ``classes`` for a
    multiclass target, the value for regression."""
    if spec.task == "classification":
        if classes is not None:
            return class_index(frame[spec.target], classes)
        return binary_target(frame[spec.target], positive).astype(np.float64)
    return frame[spec.target].cast(pl.Float64).to_numpy()


def target_of(spec: MLSpec, frame: pl.DataFrame, model: Model) -> np.ndarray:
    """``frame``'s target encoded as ``model`` was trained on it."""
    return encode_target(spec, frame, model.positive, model.classes)


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
    # The class weights of a weighted fit (imbalance.ClassWeights), whose scores predict()
    # maps back to probabilities; None for an unweighted one (and models pickled before).
    class_weights: Any = None
    # A multiclass model's labels, in the order of its probability columns; None for one
    # score per row (binary classification, regression; and models pickled before).
    classes: list[Any] | None = None

    @abstractmethod
    def predict(self, frame: pl.DataFrame) -> np.ndarray: ...

    def __getstate__(self) -> dict[str, Any]:
        state = {**self.__dict__, "validation_scores": None, "out_of_fold": None}
        state.pop("compiled", None)  # a LightGBM model's native code stays in its process
        return state

    def prepare_to_score(self, frame: pl.DataFrame) -> str:
        """Get ready to score ``frame`` (a large batch), and say how it will be scored."""
        return self.family

    def importance(self, frame: pl.DataFrame) -> pl.DataFrame | None:
        """Feature importance on ``frame`` (TreeSHAP, coefficients), or None for baselines."""
        return None

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        return scores if self.class_weights is None else self.class_weights.corrected(scores)

    def labels(self, scores: np.ndarray) -> np.ndarray:
        """Class labels as metrics take them: 0/1 at the threshold, or for K classes the
        index of the most probable (the first of equals)."""
        return labels_at(scores, self.threshold)

    def class_names(self, labels: np.ndarray) -> list[Any]:
        """A multiclass model's label indices (``labels``) as the target's own labels."""
        assert self.classes is not None, "two-class labels are 0/1 for the positive class"
        return [self.classes[int(i)] for i in labels]


@dataclass
class ConstantModel(Model):
    """Naive baseline: predicts one number learned from the training target (for K
    classes, one probability per class)."""

    value: float | list[float] = 0.0

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        if isinstance(self.value, list):
            return np.tile(np.asarray(self.value, dtype=np.float64), (frame.height, 1))
        return np.full(frame.height, self.value, dtype=np.float64)


def train_baselines(data: TrainingData) -> list[Model]:
    y = data.y_train
    common = {
        "role": "baseline",
        "task": data.spec.task,
        "features": data.features,
        "positive": data.positive,
        "classes": data.classes,
    }
    if data.classes is not None:  # K classes: the training shares, and the most common one
        shares = np.bincount(y.astype(np.int64), minlength=len(data.classes)) / len(y)
        most = int(np.argmax(shares))
        return [
            ConstantModel(
                "prior", "constant", value=shares.tolist(), params={"strategy": "prior"}, **common
            ),
            ConstantModel(
                "majority",
                "constant",
                value=np.eye(len(shares))[most].tolist(),
                params={"strategy": "majority", "majority_class": str(data.classes[most])},
                **common,
            ),
        ]
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


@dataclass
class GLMModel(Model):
    """statsmodels GLM (Logit for binary targets, Poisson for counts, Gaussian otherwise)."""

    prep: Preprocessor | None = None
    coefficients: pl.DataFrame | None = None
    result: Any = None

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        assert self.prep is not None
        return self._probabilities(self.result.predict(self.prep.design(frame)))

    def importance(self, frame: pl.DataFrame) -> pl.DataFrame | None:
        return self.coefficients


def glm_family(data: TrainingData, cfg: GLMCandidate) -> str:
    """The GLM family for ``data``: the spec's, or binomial / multinomial for two / more
    classes, Poisson for counts, Gaussian otherwise; a family that cannot fit the target is
    an error."""
    family = cfg.family
    if family == "auto":
        family = _auto_family(data)
    wanted = "multinomial" if data.classes is not None else None
    if (family == "multinomial") != (wanted == "multinomial"):
        raise ValueError(
            f"spec '{data.spec.name}': candidates.glm.family '{family}' cannot fit target "
            f"'{data.spec.target}' with {data.n_classes} classes"
            + ("" if data.spec.task == "classification" else " (a regression target)")
            + f"; use '{_auto_family(data)}' or auto"
        )
    return family


def _auto_family(data: TrainingData) -> str:
    if data.classes is not None:
        return "multinomial"
    if data.spec.task == "classification":
        return "binomial"
    return "poisson" if data.is_count else "gaussian"


def train_glm(data: TrainingData, cfg: GLMCandidate) -> GLMModel:
    import statsmodels.api as sm

    family_name = glm_family(data, cfg)
    if family_name == "multinomial":
        raise ValueError("a multinomial GLM is fitted by multiclass.train_multinomial")
    family = {
        "binomial": sm.families.Binomial(),
        "poisson": sm.families.Poisson(),
        "gaussian": sm.families.Gaussian(),
    }[family_name]

    def fit(rows: TrainingData) -> tuple[Preprocessor, Any, ClassWeights | None]:
        prep = Preprocessor.fit(rows.train, rows.features, rows.categorical)
        weights = class_weights_of(rows)
        w = None if weights is None else weights.rows(rows.y_train)
        glm = sm.GLM(rows.y_train, prep.design(rows.train), family=family, var_weights=w)
        return prep, glm.fit(), weights

    prep, result, weights = fit(data)
    validation_scores = np.asarray(result.predict(prep.design(data.validation)), dtype=np.float64)
    if weights is not None:
        validation_scores = weights.corrected(validation_scores)
    params: dict[str, Any] = {"family": family_name, "standardized": True}
    if data.refits:  # the same model on train + validation rows
        refit = with_validation_rows(data)
        prep, result, weights = fit(refit)
        params |= {"refit": "train+validation", "refit_rows": refit.train.height}
    if weights is not None:
        params |= weights.params()
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
    model.class_weights = weights
    model.validation_scores = validation_scores  # of the fit on train: honest on validation
    if data.spec.task == "classification":  # binary: the multinomial GLM returned above
        model.threshold = choose_threshold(
            data.y_validation, validation_scores, data.spec.threshold_metric
        )
    return model


@dataclass
class LightGBMModel(Model):
    """A LightGBM booster with its training-fitted category coding."""

    prep: Preprocessor | None = None
    booster: Any = None
    # The booster compiled to native code (compiled.Compiled), set by prepare_to_score for a
    # large batch; never pickled.
    compiled: Any = field(default=None, repr=False, compare=False)

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        assert self.prep is not None
        codes = self.prep.codes(frame)
        predictor = self.booster if self.compiled is None else self.compiled
        return self._probabilities(predictor.predict(codes))

    def prepare_to_score(self, frame: pl.DataFrame) -> str:
        """From ``COMPILE_MIN_ROWS`` rows on, score with the booster compiled by lleaves, once
        it predicts the batch's first rows as the booster does (compiled.for_batch)."""
        assert self.prep is not None
        self.compiled, how = compiled_lib.for_batch(self.booster, self.prep.codes, frame)
        return how

    def importance(self, frame: pl.DataFrame) -> pl.DataFrame | None:
        assert self.prep is not None
        contrib = np.asarray(self.booster.predict(self.prep.codes(frame), pred_contrib=True))
        # K classes: K blocks of (features + expected value) per row, summed over classes.
        blocks = contrib.reshape(frame.height, -1, len(self.prep.features) + 1)
        shap = np.abs(blocks[:, :, :-1]).mean(axis=0).sum(axis=0)
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
