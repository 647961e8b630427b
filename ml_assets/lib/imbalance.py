"""Class weights for imbalanced classification (``class_weight`` in the spec).

A weighted fit learns the odds of the positive class multiplied by w1 / w0. The weighted
model's scores are mapped back to probabilities by dividing those odds out again
(``corrected``), so weighting changes what the model learns, not what its scores mean:
calibration, log loss and the drift of scores stay comparable with an unweighted model.
With K classes the same holds per class: a weighted fit's probabilities are each class's
share times its weight, renormalised, and ``corrected`` divides the weights out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml_assets.lib.spec import MLSpec

AUTO_MINORITY_SHARE = 0.05  # class_weight: auto tries weights when the rarest class is rarer


@dataclass(frozen=True)
class ClassWeights:
    """The weight of the negative (0) and the positive (1) rows."""

    negative: float
    positive: float
    how: str  # "balanced" or "spec"

    def rows(self, y: np.ndarray) -> np.ndarray:
        return np.where(y > 0.5, self.positive, self.negative)

    def corrected(self, scores: np.ndarray) -> np.ndarray:
        """Weighted-fit scores as probabilities of the unweighted classes."""
        p = np.asarray(scores, dtype=np.float64)
        return p * self.negative / (p * self.negative + (1 - p) * self.positive)

    def params(self) -> dict[str, object]:
        return {
            "class_weight": self.how,
            "class_weight_negative": round(self.negative, 6),
            "class_weight_positive": round(self.positive, 6),
        }


@dataclass(frozen=True)
class MulticlassWeights:
    """The weight of each class's rows, in the order of the model's classes."""

    classes: tuple[object, ...]
    weights: tuple[float, ...]
    how: str  # "balanced" or "spec"

    def rows(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(self.weights)[np.asarray(y, dtype=np.int64)]

    def corrected(self, scores: np.ndarray) -> np.ndarray:
        """Weighted-fit class probabilities (rows x K) as probabilities of the unweighted
        classes."""
        p = np.asarray(scores, dtype=np.float64) / np.asarray(self.weights)
        return p / p.sum(axis=1, keepdims=True)

    def params(self) -> dict[str, object]:
        by_class = {
            f"class_weight_{label}": round(w, 6)
            for label, w in zip(self.classes, self.weights, strict=True)
        }
        return {"class_weight": self.how, **by_class}


def _key(label: object) -> str:
    """A label as the spec may write it: YAML reads `true:` as a boolean, which a weight's
    key may also have become 1; 1, 1.0, True and "true" name the same label."""
    if isinstance(label, bool) or label in (0, 1):
        return str(int(label))  # type: ignore[call-overload]
    text = str(label)
    return {"true": "1", "false": "0"}.get(text.lower(), text)


def _shares(y_train: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class's share of the training rows (0/1 or class-index targets)."""
    counts = np.bincount(
        np.asarray(y_train > 0.5 if n_classes == 2 else y_train, dtype=np.int64),
        minlength=n_classes,
    )
    return counts / max(len(y_train), 1)


def weighting_options(spec: MLSpec, y_train: np.ndarray, n_classes: int = 2) -> list[str]:
    """The class_weight settings a candidate is trained with: the spec's own, or for auto
    with a rare class (under AUTO_MINORITY_SHARE of the training rows) both "none" and
    "balanced", for the selection score to choose between."""
    setting = spec.class_weight
    if spec.task != "classification" or setting != "auto":
        return ["spec"]
    shares = _shares(y_train, n_classes)
    if len(y_train) == 0 or np.any(shares == 0) or shares.min() >= AUTO_MINORITY_SHARE:
        return ["none"]
    return ["none", "balanced"]


def class_weights(
    spec: MLSpec,
    y_train: np.ndarray,
    positive: object,
    negative: object,
    classes: list[object] | None = None,
) -> ClassWeights | MulticlassWeights | None:
    """The class weights of ``spec.class_weight`` for training rows ``y_train`` (0/1, or
    with ``classes`` the class index), or None for none. ``auto`` here is unweighted: its
    choice is made by training both (``weighting_options``) and setting the one chosen on
    the spec."""
    setting = spec.class_weight
    if spec.task != "classification" or setting in ("none", "auto"):
        return None
    labels = classes if classes is not None else [negative, positive]
    by_label: dict[str, float] = {}
    if isinstance(setting, dict):
        by_label = {_key(k): w for k, w in setting.items()}
        known = {_key(label) for label in labels}
        unknown = sorted(set(by_label) - known)
        if unknown:
            raise ValueError(
                f"spec '{spec.name}': class_weight names labels {unknown} that target "
                f"'{spec.target}' does not have; its labels are {sorted(known)}"
            )
        weights = [by_label.get(_key(label), 1.0) for label in labels]
        how = "spec"
    else:
        shares = _shares(y_train, len(labels))
        if len(y_train) == 0 or np.any(shares == 0):
            return None
        weights = [float(1 / (len(labels) * s)) for s in shares]
        how = "balanced"
    if classes is None:
        return ClassWeights(weights[0], weights[1], how)
    return MulticlassWeights(tuple(classes), tuple(weights), how)
