"""Targets of more than two classes: the multinomial GLM and the per-class diagnostics.

Class probabilities are rows x K in the order of the sorted labels (``Model.classes``); the
predicted label is the most probable class. LightGBM's multiclass objective is set in
lightgbm_search; the metrics take the matrices directly (metrics.py).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import polars as pl

from ml_assets.lib.models import GLMModel, TrainingData, class_weights_of, with_validation_rows
from ml_assets.lib.preprocess import Preprocessor


def _fit_mnlogit(rows: TrainingData) -> tuple[Preprocessor, Any]:
    """statsmodels MNLogit on the standardised design of ``rows.train``, every class among
    its rows (the first class is the reference of the coefficients)."""
    import statsmodels.api as sm

    present = np.unique(rows.y_train)
    if len(present) != rows.n_classes:
        missing = sorted(set(range(rows.n_classes)) - {int(v) for v in present})
        raise ValueError(
            f"spec '{rows.spec.name}': the multinomial GLM's training rows have no row of "
            f"class(es) {[rows.classes[i] for i in missing] if rows.classes else missing}; "
            "each class needs training rows (stratify the split)"
        )
    prep = Preprocessor.fit(rows.train, rows.features, rows.categorical)
    model = sm.MNLogit(rows.y_train.astype(np.int64), prep.design(rows.train))
    with warnings.catch_warnings():
        # Newton's method warns of iterations it needed on nearly separable classes; the
        # fit that comes back is still the maximum found, and is scored like any other.
        warnings.simplefilter("ignore")
        try:
            result = model.fit(method="newton", maxiter=100, disp=False)
        except np.linalg.LinAlgError:  # a singular Hessian (e.g. a constant dummy): BFGS
            result = model.fit(method="bfgs", maxiter=500, disp=False)
    return prep, result


def train_multinomial(data: TrainingData) -> GLMModel:
    """A multinomial logit over the classes of ``data``, scored on validation by its fit on
    train, then (with ``split.refit``) refit on train + validation."""
    name, k = data.spec.name, data.n_classes
    if class_weights_of(data) is not None:
        raise ValueError(
            f"spec '{name}': class_weight '{data.spec.class_weight}' with {k} classes: the "
            "multinomial GLM (statsmodels MNLogit) fits unweighted rows; set class_weight to "
            "none or auto, or remove 'glm' from candidates"
        )
    prep, result = _fit_mnlogit(data)
    validation_scores = np.asarray(result.predict(prep.design(data.validation)), dtype=np.float64)
    params: dict[str, Any] = {"family": "multinomial", "standardized": True, "classes": k}
    if data.refits:
        refit = with_validation_rows(data)
        prep, result = _fit_mnlogit(refit)
        params |= {"refit": "train+validation", "refit_rows": refit.train.height}
    coefficients = coefficient_table(prep.design_names(), data.classes or [], result)
    result.remove_data()
    model = GLMModel(
        "glm_multinomial",
        "statsmodels_glm",
        "candidate",
        data.spec.task,
        data.features,
        None,
        params,
        classes=data.classes,
        prep=prep,
        coefficients=coefficients,
        result=result,
    )
    model.validation_scores = validation_scores
    return model


def coefficient_table(names: list[str], classes: list[object], result: Any) -> pl.DataFrame:
    """One row per design column and non-reference class: the coefficient of that class's
    log-odds against the first class, its standard error and p-value; ``importance`` is the
    absolute standardised coefficient."""
    params, bse, pvalues = (np.asarray(a) for a in (result.params, result.bse, result.pvalues))
    rows = []
    for j, label in enumerate(classes[1:]):
        for i, feature in enumerate(names):
            rows.append(
                {
                    "feature": feature,
                    "class": f"{label} vs {classes[0]}",
                    "coefficient": float(params[i, j]),
                    "std_err": float(bse[i, j]),
                    "p_value": float(pvalues[i, j]),
                    "importance": abs(float(params[i, j])),
                }
            )
    return pl.DataFrame(rows)


def per_class_table(y: np.ndarray, labels: np.ndarray, classes: list[object]) -> pl.DataFrame:
    """Precision, recall, F1 and support of each class, the label being the most probable."""
    from sklearn.metrics import precision_recall_fscore_support

    index = list(range(len(classes)))
    p, r, f, n = precision_recall_fscore_support(y, labels, labels=index, zero_division=0)
    return pl.DataFrame(
        {
            "class": [str(c) for c in classes],
            "rows": [int(v) for v in n],
            "precision": [float(v) for v in p],
            "recall": [float(v) for v in r],
            "f1": [float(v) for v in f],
        }
    )


def confusion_table(y: np.ndarray, labels: np.ndarray, classes: list[object]) -> pl.DataFrame:
    """Test rows by actual class (rows) and predicted class (one column per class)."""
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(y, labels, labels=list(range(len(classes))))
    columns = {f"predicted {c}": cm[:, j].astype(np.int64) for j, c in enumerate(classes)}
    return pl.DataFrame({"actual": [str(c) for c in classes], **columns})


def top_class_confidence(scores: np.ndarray) -> np.ndarray:
    """Each row's probability of its most probable class."""
    return np.max(scores, axis=1)
