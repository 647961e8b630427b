"""Baselines and candidate models behind one interface.

Every model maps a polars frame of feature columns to one number per row: the probability of
the positive class for classification, the expected value for regression. The evaluation,
report and promotion code only ever see that interface, so forecasting models can join it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

# Imported here, not inside train_lightgbm: optuna's import keeps the tracebacks of the
# optional imports it fails (optuna._imports.try_import), and with them every frame on the
# stack at that moment; inside a training step those frames hold the whole training data for
# the rest of the process (1.5 GiB per 10M rows).
import optuna
import polars as pl

from ml_assets.lib.cores import available_threads
from ml_assets.lib.data import binary_target, feature_columns, positive_class
from ml_assets.lib.metrics import Metric, get_metric, score
from ml_assets.lib.preprocess import Preprocessor
from ml_assets.lib.spec import GLMCandidate, LightGBMCandidate, MLSpec
from ml_assets.lib.validation import categorical_columns

log = logging.getLogger(__name__)

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

    @abstractmethod
    def predict(self, frame: pl.DataFrame) -> np.ndarray: ...

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "validation_scores": None}

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
        {"family": family_name, "standardized": True},
        prep=prep,
        coefficients=coefficients,
        result=result,
    )
    if data.spec.task == "classification":
        model.threshold = choose_threshold(data.y_validation, model.predict(data.validation))
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


def lightgbm_objective(data: TrainingData, cfg: LightGBMCandidate) -> str:
    if cfg.objective != "auto":
        return cfg.objective
    if data.spec.task == "classification":
        return "binary"
    return "poisson" if data.is_count else "regression"


INTEGER_PARAMS = frozenset(
    {
        "num_leaves",
        "min_data_in_leaf",
        "max_depth",
        "bagging_freq",
        "max_bin",
        "max_cat_threshold",
        "min_child_samples",
        "num_iterations",
        "min_data_per_group",
        "cat_smooth",
    }
)


def _suggest(trial: Any, name: str, low: float, high: float) -> float | int:
    """Integer range for LightGBM's integer parameters, float (log scale if wide) otherwise."""
    if name in INTEGER_PARAMS:
        return int(trial.suggest_int(name, int(low), int(high)))
    log_scale = low > 0 and high / low >= 100
    return float(trial.suggest_float(name, low, high, log=log_scale))


@dataclass(frozen=True)
class _Rows:
    """Encoded rows for one LightGBM search: fit, early-stopping and validation parts."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_stop: np.ndarray
    y_stop: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    def sample(self, fit_rows: int, seed: int) -> _Rows:
        """A seeded subsample with ``fit_rows`` fit rows and the other parts in proportion."""
        rng = np.random.default_rng([seed, 3])
        share = fit_rows / len(self.y_fit)

        def pick(n: int) -> np.ndarray:
            return np.sort(rng.choice(n, size=max(1, int(round(n * share))), replace=False))

        fit, stop, val = pick(len(self.y_fit)), pick(len(self.y_stop)), pick(len(self.y_val))
        return _Rows(
            self.x_fit[fit],
            self.y_fit[fit],
            self.x_stop[stop],
            self.y_stop[stop],
            self.x_val[val],
            self.y_val[val],
        )


@dataclass
class _Trial:
    value: float
    params: dict[str, Any]
    booster: Any
    scores: np.ndarray


def train_lightgbm(data: TrainingData, cfg: LightGBMCandidate, primary: Metric) -> LightGBMModel:
    """Optuna (TPE, seeded) search scored on the validation split.

    Early stopping watches a separate slice of the training rows (``early_stopping_fraction``),
    so validation scores are not also the numbers that chose the number of trees. With more
    fit rows than ``search_rows``, the search is a two-rung successive halving: every trial
    fits a seeded subsample of ``search_rows`` rows (validation and stopping rows sampled in
    the same proportion), then the ``finalists`` best are refit on every row and the one best
    on the whole validation split wins. The model's params say which search ran.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = data.spec.split.seed
    prep = Preprocessor.fit(data.train, data.features, data.categorical)
    x_all = prep.codes(data.train)
    fit_rows, stop_rows = _early_stopping_split(len(x_all), cfg.early_stopping_fraction, seed)
    full = _Rows(
        x_all[fit_rows],
        data.y_train[fit_rows],
        x_all[stop_rows],
        data.y_train[stop_rows],
        prep.codes(data.validation),
        data.y_validation,
    )
    del x_all
    cat_idx = list(range(len(prep.numeric), len(prep.features)))
    base = {
        "objective": lightgbm_objective(data, cfg),
        "deterministic": True,
        "force_row_wise": True,
        "seed": seed,
        "num_threads": available_threads(),
        "verbosity": -1,
        **cfg.params,
    }
    halving = cfg.budget > 1 and len(full.y_fit) > cfg.search_rows
    rows = full.sample(cfg.search_rows, seed) if halving else full
    trials: list[_Trial] = []

    def objective(trial: Any) -> float:
        params = {**base, **{k: _suggest(trial, k, lo, hi) for k, (lo, hi) in cfg.search.items()}}
        result = _fit_and_score(params, rows, cfg, cat_idx, primary)
        if halving:  # only the params are needed: finalists are refit on every row
            trials.append(_Trial(result.value, params, None, np.empty(0)))
        else:  # keep the best so far (the first of equals)
            trials[:] = [max([*trials, result], key=lambda t: t.value)]
        return result.value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=cfg.budget)
    search: dict[str, Any] = {"trials": cfg.budget}
    if halving:
        ranked = sorted(trials, key=lambda t: t.value, reverse=True)[: cfg.finalists]
        trials = [_fit_and_score(t.params, full, cfg, cat_idx, primary) for t in ranked]
        search |= {
            "search": "successive halving",
            "search_fit_rows": len(rows.y_fit),
            "finalists_refit_on_rows": len(full.y_fit),
            "finalists": len(trials),
        }
    best = max(trials, key=lambda t: t.value)
    booster = best.booster
    booster.best_iteration = booster.best_iteration or booster.current_iteration()
    params = {**best.params, "best_iteration": booster.best_iteration, **search}
    model = LightGBMModel(
        "lightgbm",
        "lightgbm",
        "candidate",
        data.spec.task,
        data.features,
        data.positive,
        params,
        prep=prep,
        booster=_trimmed(booster),
    )
    model.validation_scores = best.scores  # the best trial's, equal to the trimmed booster's
    if data.spec.task == "classification":
        model.threshold = choose_threshold(data.y_validation, best.scores)
    return model


def _fit_and_score(
    params: dict[str, Any], rows: _Rows, cfg: LightGBMCandidate, cat_idx: list[int], primary: Metric
) -> _Trial:
    """One LightGBM fit with early stopping on the stopping rows, scored on validation rows."""
    import lightgbm as lgb

    train_set = lgb.Dataset(
        rows.x_fit, rows.y_fit, categorical_feature=cat_idx, free_raw_data=False
    )
    stop_set = lgb.Dataset(rows.x_stop, rows.y_stop, reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        cfg.num_boost_round,
        valid_sets=[stop_set],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )
    scores = booster.predict(rows.x_val, num_iteration=booster.best_iteration)
    return _Trial(_validation_score(primary, rows.y_val, scores), params, booster, scores)


def _early_stopping_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (fit, early stopping) of the training rows, shuffled with the spec's seed."""
    order = np.random.default_rng([seed, 1]).permutation(n)
    stop = max(1, int(round(n * fraction)))
    return np.sort(order[stop:]), np.sort(order[:stop])


def _trimmed(booster: Any) -> Any:
    """A booster holding only its best iterations, so predict() needs no num_iteration."""
    import lightgbm as lgb

    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))


def _validation_score(metric: Metric, y_validation: np.ndarray, scores: np.ndarray) -> float:
    """The primary metric on validation, signed so that larger is always better."""
    if metric.kind == "label":  # same rule as the final model: threshold chosen on validation
        threshold = choose_threshold(y_validation, scores)
        scores = (scores >= threshold).astype(np.int8)
    value = score(metric, y_validation, scores)
    return value if metric.greater_is_better else -value


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
