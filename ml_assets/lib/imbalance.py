"""Class weights for imbalanced classification (``class_weight`` in the spec).

A weighted fit learns the odds of the positive class multiplied by w1 / w0. The weighted
model's scores are mapped back to probabilities by dividing those odds out again
(``corrected``), so weighting changes what the model learns, not what its scores mean:
calibration, log loss and the drift of scores stay comparable with an unweighted model.
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


def _key(label: object) -> str:
    """A label as the spec may write it: YAML reads `true:` as a boolean, which a weight's
    key may also have become 1; 1, 1.0, True and "true" name the same label."""
    if isinstance(label, bool) or label in (0, 1):
        return str(int(label))  # type: ignore[call-overload]
    text = str(label)
    return {"true": "1", "false": "0"}.get(text.lower(), text)


def weighting_options(spec: MLSpec, y_train: np.ndarray) -> list[str]:
    """The class_weight settings a candidate is trained with: the spec's own, or for auto
    with a rare class (under AUTO_MINORITY_SHARE of the training rows) both "none" and
    "balanced", for the selection score to choose between."""
    setting = spec.class_weight
    if spec.task != "classification" or setting != "auto":
        return ["spec"]
    n, n_pos = len(y_train), float(np.sum(y_train > 0.5))
    if n == 0 or n_pos in (0, n) or min(n_pos, n - n_pos) / n >= AUTO_MINORITY_SHARE:
        return ["none"]
    return ["none", "balanced"]


def class_weights(
    spec: MLSpec, y_train: np.ndarray, positive: object, negative: object
) -> ClassWeights | None:
    """The class weights of ``spec.class_weight`` for training rows ``y_train`` (0/1), or
    None for none. ``auto`` here is unweighted: its choice is made by training both
    (``weighting_options``) and setting the one chosen on the spec."""
    setting = spec.class_weight
    if spec.task != "classification" or setting in ("none", "auto"):
        return None
    n, n_pos = len(y_train), float(np.sum(y_train > 0.5))
    if isinstance(setting, dict):
        by_label = {_key(k): w for k, w in setting.items()}
        known = {_key(positive), _key(negative)}
        unknown = sorted(set(by_label) - known)
        if unknown:
            raise ValueError(
                f"spec '{spec.name}': class_weight names labels {unknown} that target "
                f"'{spec.target}' does not have; its labels are {sorted(known)}"
            )
        return ClassWeights(
            by_label.get(_key(negative), 1.0), by_label.get(_key(positive), 1.0), "spec"
        )
    if n == 0 or n_pos in (0, n):
        return None
    return ClassWeights(n / (2 * (n - n_pos)), n / (2 * n_pos), "balanced")
