"""LightGBM candidates: a seeded Optuna search on the validation split, with early stopping
on a slice of the training rows and successive halving on a subsample at scale.

The fitted model is a ``models.LightGBMModel`` (that class stays in models.py: registered
champions are pickled under its path).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

# Imported here, not inside train_lightgbm: optuna's import keeps the tracebacks of the
# optional imports it fails (optuna._imports.try_import), and with them every frame on the
# stack at that moment; inside a training step those frames hold the whole training data for
# the rest of the process (1.5 GiB per 10M rows).
import optuna

from ml_assets.lib import cross_validation, folds
from ml_assets.lib.cores import available_threads
from ml_assets.lib.imbalance import ClassWeights
from ml_assets.lib.metrics import Metric, score
from ml_assets.lib.models import (
    LightGBMModel,
    TrainingData,
    class_weights_of,
    with_validation_rows,
)
from ml_assets.lib.preprocess import Preprocessor
from ml_assets.lib.spec import LightGBMCandidate
from ml_assets.lib.thresholds import choose_threshold, labels_at


def lightgbm_objective(data: TrainingData, cfg: LightGBMCandidate) -> str:
    if cfg.objective != "auto":
        return cfg.objective
    if data.classes is not None:
        return "multiclass"
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
    weights: ClassWeights | None = None  # of the fit rows' classes (class_weight)

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
            self.weights,
        )


@dataclass
class _Trial:
    """A trial's settings and its score: the mean over its parts (the folds, or the one
    validation split) of the primary metric, with each part's fitted booster (kept only while
    needed), held-out scores and best iteration."""

    value: float
    params: dict[str, Any]
    boosters: list[Any]
    scores: list[np.ndarray]
    iterations: list[int]


def _encoded(data: TrainingData, cfg: LightGBMCandidate) -> tuple[Preprocessor, _Rows]:
    """Category coding fitted on ``data.train`` and its rows for one fit: fit and
    early-stopping rows from ``data.train``, scored rows from ``data.validation``."""
    prep = Preprocessor.fit(data.train, data.features, data.categorical)
    x_all = prep.codes(data.train)
    # The stopping rows are held out as the spec's split holds rows out (whole groups, the
    # latest in time): rows of one entity on both sides would make early stopping stop late.
    fit_rows, stop_rows = folds.holdout(data.spec, data.train, cfg.early_stopping_fraction)
    rows = _Rows(
        x_all[fit_rows],
        data.y_train[fit_rows],
        x_all[stop_rows],
        data.y_train[stop_rows],
        prep.codes(data.validation),
        data.y_validation,
        class_weights_of(data),
    )
    return prep, rows


def train_lightgbm(data: TrainingData, cfg: LightGBMCandidate, primary: Metric) -> LightGBMModel:
    """Optuna (TPE, seeded) search scored on the validation split or, with folds
    (``cross_validation.cv_rows``), on the mean over the folds of train + validation.

    Early stopping watches a separate slice of the fit rows (``early_stopping_fraction``,
    held out as the split holds rows out: ``folds.holdout``), so the scored rows are not also
    the numbers that chose the number of trees. With more fit rows than ``search_rows``, the
    search is a two-rung successive halving: every trial fits a seeded subsample of
    ``search_rows`` rows (scored and stopping rows sampled in the same proportion), then the
    ``finalists`` best are refit on every row and the one best on all scored rows wins. With
    folds, the final model has the median of the folds' best iterations, fitted on train +
    validation. The model's params say which search ran.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed, threshold_for = data.spec.split.seed, data.spec.threshold_metric
    cv = cross_validation.cv_rows(data)
    if cv is None:
        prep, part = _encoded(data, cfg)
        parts = [part]
    else:  # each fold's coding is fitted on its own fit rows
        coded = [_encoded(cv.fold(f), cfg) for f in cv.folds]
        prep, parts = coded[0][0], [rows for _, rows in coded]
    cat_idx = list(range(len(prep.numeric), len(prep.features)))
    base = {
        "objective": lightgbm_objective(data, cfg),
        "deterministic": True,
        "force_row_wise": True,
        "seed": seed,
        "num_threads": available_threads(),
        "verbosity": -1,
        **({"num_class": data.n_classes} if data.classes is not None else {}),
        **cfg.params,
    }
    halving = cfg.budget > 1 and len(parts[0].y_fit) > cfg.search_rows
    searched = [p.sample(cfg.search_rows, seed) for p in parts] if halving else parts
    trials: list[_Trial] = []

    def objective(trial: Any) -> float:
        params = {**base, **{k: _suggest(trial, k, lo, hi) for k, (lo, hi) in cfg.search.items()}}
        result = _fit_and_score(params, searched, cfg, cat_idx, primary, threshold_for)
        if halving:  # only the params are needed: finalists are refit on every row
            trials.append(dataclasses.replace(result, boosters=[]))
        else:  # keep the best so far (the first of equals)
            trials[:] = [max([*trials, result], key=lambda t: t.value)]
        return result.value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=cfg.budget)
    search: dict[str, Any] = {"trials": cfg.budget}
    if halving:
        ranked = sorted(trials, key=lambda t: t.value, reverse=True)[: cfg.finalists]
        trials = [
            _fit_and_score(t.params, parts, cfg, cat_idx, primary, threshold_for) for t in ranked
        ]
        search |= {
            "search": "successive halving",
            "search_fit_rows": len(searched[0].y_fit),
            "finalists_refit_on_rows": len(parts[0].y_fit),
            "finalists": len(trials),
        }
    best = max(trials, key=lambda t: t.value)
    if cv is None:
        prep, booster, params = _chosen_fit(data, prep, best, search, cat_idx)
    else:  # every fold's booster was scored only: the model is one fit of the chosen settings
        rounds = int(np.median(best.iterations))
        params = {**best.params, "best_iteration": rounds, **search}
        params["cv_best_iterations"] = best.iterations
        fit_on = with_validation_rows(data) if data.refits else data
        prep, booster = _refit(best.params, rounds, fit_on, cat_idx)
        if data.refits:
            params |= {"refit": "train+validation", "refit_rows": fit_on.train.height}
    model = LightGBMModel(
        "lightgbm",
        "lightgbm",
        "candidate",
        data.spec.task,
        data.features,
        data.positive,
        params,
        classes=data.classes,
        prep=prep,
        booster=booster,
    )
    # The weights of the rows the final booster learned from (train + validation with refit).
    model.class_weights = class_weights_of(with_validation_rows(data) if data.refits else data)
    if model.class_weights is not None:
        model.params = {**model.params, **model.class_weights.params()}
    if cv is not None:
        oof = cross_validation.out_of_fold(cv, best.scores)
        return cross_validation.attach(model, oof, data.spec.threshold_metric)
    model.validation_scores = best.scores[0]  # the best trial's: of the fit before any refit
    if data.spec.task == "classification":
        model.threshold = choose_threshold(
            data.y_validation, best.scores[0], data.spec.threshold_metric
        )
    return model


def _chosen_fit(
    data: TrainingData,
    prep: Preprocessor,
    best: _Trial,
    search: dict[str, Any],
    cat_idx: list[int],
) -> tuple[Preprocessor, Any, dict[str, Any]]:
    """Without folds: the best trial's booster (coded by ``prep``, of the train rows) trimmed
    to its best iteration or, with ``split.refit``, refit with coding and that many trees on
    train + validation."""
    booster = best.boosters[0]
    booster.best_iteration = booster.best_iteration or booster.current_iteration()
    params = {**best.params, "best_iteration": booster.best_iteration, **search}
    if not data.refits:
        return prep, _trimmed(booster), params
    both = with_validation_rows(data)
    prep, refit = _refit(best.params, booster.best_iteration, both, cat_idx)
    params |= {"refit": "train+validation", "refit_rows": both.train.height}
    return prep, refit, params


def _fit_and_score(
    params: dict[str, Any],
    parts: list[_Rows],
    cfg: LightGBMCandidate,
    cat_idx: list[int],
    primary: Metric,
    threshold_for: str,
) -> _Trial:
    """One LightGBM fit per part with early stopping on its stopping rows, scored on its
    held-out rows; the trial's value is the mean of the parts' primary metric."""
    import lightgbm as lgb

    boosters, scores, values, iterations = [], [], [], []
    for rows in parts:
        w = rows.weights
        train_set = lgb.Dataset(
            rows.x_fit,
            rows.y_fit,
            weight=None if w is None else w.rows(rows.y_fit),
            categorical_feature=cat_idx,
            free_raw_data=False,
        )
        stop_set = lgb.Dataset(
            rows.x_stop,
            rows.y_stop,
            weight=None if w is None else w.rows(rows.y_stop),
            reference=train_set,
        )
        booster = lgb.train(
            params,
            train_set,
            cfg.num_boost_round,
            valid_sets=[stop_set],
            callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
        )
        predicted = booster.predict(rows.x_val, num_iteration=booster.best_iteration)
        if w is not None:  # the weighted fit's scores as probabilities
            predicted = w.corrected(predicted)
        boosters.append(booster)
        scores.append(predicted)
        values.append(_validation_score(primary, rows.y_val, predicted, threshold_for))
        iterations.append(int(booster.best_iteration or booster.current_iteration()))
    return _Trial(float(np.mean(values)), params, boosters, scores, iterations)


def _refit(
    params: dict[str, Any], rounds: int, data: TrainingData, cat_idx: list[int]
) -> tuple[Preprocessor, Any]:
    """The category coding and a booster of ``rounds`` trees with ``params``, fitted on every
    row of ``data.train`` (no early stopping: the number of trees was chosen already), with
    the class weights of those rows."""
    import lightgbm as lgb

    prep = Preprocessor.fit(data.train, data.features, data.categorical)
    weights = class_weights_of(data)
    train_set = lgb.Dataset(
        prep.codes(data.train),
        data.y_train,
        weight=None if weights is None else weights.rows(data.y_train),
        categorical_feature=cat_idx,
    )
    # A round count or early stopping among the user's params would override the one chosen.
    fixed = {k: v for k, v in params.items() if k not in ROUNDS_AND_STOPPING}
    return prep, lgb.train(fixed, train_set, max(rounds, 1))


# LightGBM's names (and aliases) for the number of rounds and for early stopping.
ROUNDS_AND_STOPPING = frozenset(
    {
        "num_iterations",
        "num_iteration",
        "n_iter",
        "num_tree",
        "num_trees",
        "num_round",
        "num_rounds",
        "nrounds",
        "num_boost_round",
        "n_estimators",
        "max_iter",
        "early_stopping_round",
        "early_stopping_rounds",
        "early_stopping",
        "n_iter_no_change",
    }
)


def _trimmed(booster: Any) -> Any:
    """A booster holding only its best iterations, so predict() needs no num_iteration."""
    import lightgbm as lgb

    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))


def _validation_score(
    metric: Metric, y_validation: np.ndarray, scores: np.ndarray, threshold_for: str
) -> float:
    """The primary metric on validation, signed so that larger is always better."""
    if metric.kind == "label":  # same rule as the final model: threshold chosen on validation
        scores = labels_at(scores, choose_threshold(y_validation, scores, threshold_for))
    value = score(metric, y_validation, scores)
    return value if metric.greater_is_better else -value
