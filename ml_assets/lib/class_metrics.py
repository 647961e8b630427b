"""Classification metrics in numpy, for the bootstrap's sake: it calls each thousands of
times on a few hundred rows, where scikit-learn's input validation costs ~4 ms a call. Each
is scikit-learn's definition (the tests compare them), over the classes that the truth or
the labels hold.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def binary_auc(positive: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC of a 0/1 mask from the rank sum of the positives (ties share ranks), as
    scikit-learn's roc_auc_score."""
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    ranks = stats.rankdata(p)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _class_counts(y: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Counts by true (rows) and predicted class over the classes either holds, in sorted
    order (scikit-learn's label set for these metrics)."""
    classes, codes = np.unique(np.concatenate([y, label]), return_inverse=True)
    k, n = len(classes), len(y)
    return np.bincount(codes[:n] * k + codes[n:], minlength=k * k).reshape(k, k)


def _f1_per_class(cm: np.ndarray) -> np.ndarray:
    tp = np.diag(cm).astype(float)
    denominator = cm.sum(axis=0) + cm.sum(axis=1)  # 2tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def macro_f1(y: np.ndarray, label: np.ndarray) -> float:
    """The mean F1 of every class (a class neither true nor predicted counts as 0), as
    scikit-learn's f1_score(average="macro", zero_division=0)."""
    return float(np.mean(_f1_per_class(_class_counts(y, label)))) if len(y) else 0.0


def weighted_f1(y: np.ndarray, label: np.ndarray) -> float:
    """Each class's F1 weighted by its true rows."""
    cm = _class_counts(y, label)
    support = cm.sum(axis=1)
    return float(np.sum(_f1_per_class(cm) * support) / support.sum()) if len(y) else 0.0


def accuracy(y: np.ndarray, label: np.ndarray) -> float:
    return float(np.mean(np.asarray(y) == np.asarray(label)))


def balanced_accuracy(y: np.ndarray, label: np.ndarray) -> float:
    """The mean recall of the classes present in the truth."""
    cm = _class_counts(y, label)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))
