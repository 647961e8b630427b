"""Drift statistics between a reference sample and a new one: PSI per feature, a KS test
(numeric) or chi-squared test (categorical), missing-rate change, prediction drift."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from ml_assets.lib.metrics import Estimate

EPS = 1e-4


@dataclass(frozen=True)
class PredictionDrift:
    """The predictions' PSI between the reference sample and the day, of the one number per
    row that moved most: the score, or for K classes the probability of the class whose
    distribution shifted most (a shift in the class mix moves those even when the model is
    as sure as before)."""

    psi: float
    of: str  # "score", or "P(<class>)"
    reference: np.ndarray
    current: np.ndarray


def prediction_drift(
    reference: np.ndarray, current: np.ndarray, classes: Sequence[object] | None = None
) -> PredictionDrift:
    """Prediction drift of scores (1-D) or of K class probabilities (rows x K, in the order
    of ``classes``): per class, the PSI of its probability; the largest is reported."""
    reference, current = (
        np.asarray(reference, dtype=np.float64),
        np.asarray(current, dtype=np.float64),
    )
    if reference.ndim != current.ndim or (
        reference.ndim == 2 and reference.shape[1] != current.shape[1]
    ):
        raise ValueError(
            "prediction drift compares scores of one shape: the reference has "
            f"{_per_row(reference)}, the day {_per_row(current)}"
        )
    if reference.ndim == 1:
        return PredictionDrift(psi_numeric(reference, current), "score", reference, current)
    names = list(classes) if classes is not None else list(range(reference.shape[1]))
    if len(names) != reference.shape[1]:
        raise ValueError(
            f"{reference.shape[1]} class probabilities for {len(names)} classes {names}"
        )
    per_class = np.array([psi_numeric(reference[:, k], current[:, k]) for k in range(len(names))])
    if np.all(np.isnan(per_class)):  # no scores on one side: nothing to name
        return PredictionDrift(float("nan"), "no scores", reference[:, 0], current[:, 0])
    worst = int(np.nanargmax(per_class))
    return PredictionDrift(
        float(per_class[worst]), f"P({names[worst]})", reference[:, worst], current[:, worst]
    )


def _per_row(scores: np.ndarray) -> str:
    return f"{scores.shape[1]} scores per row" if scores.ndim == 2 else "one score per row"


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index over quantile bins of the reference (nulls excluded). A
    reference of at most ``bins`` distinct values (a 0/1 flag, a small count, a constant)
    has a bin per value instead, and one more for values it never took: quantile edges
    would merge those values into one bin and see no shift at all."""
    ref, cur = reference[~np.isnan(reference)], current[~np.isnan(current)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    levels = np.unique(ref)
    if len(levels) <= bins:
        return _psi(_value_shares(ref, levels), _value_shares(cur, levels))
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    p = np.histogram(ref, edges)[0] / len(ref)
    q = np.histogram(cur, edges)[0] / len(cur)
    return _psi(p, q)


def _value_shares(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The share of ``values`` at each of the sorted ``levels``, then the share elsewhere."""
    at = np.minimum(np.searchsorted(levels, values), len(levels) - 1)
    known = levels[at] == values
    counts = np.bincount(at[known], minlength=len(levels))
    return np.append(counts, len(values) - known.sum()) / len(values)


def psi_categorical(reference: pl.Series, current: pl.Series) -> float:
    levels = sorted(
        set(reference.drop_nulls().to_list()) | set(current.drop_nulls().to_list()), key=str
    )
    p = np.array([(reference == v).sum() for v in levels], dtype=float) / max(
        reference.drop_nulls().len(), 1
    )
    q = np.array([(current == v).sum() for v in levels], dtype=float) / max(
        current.drop_nulls().len(), 1
    )
    return _psi(p, q)


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.clip(p, EPS, None), np.clip(q, EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


def drift_test(reference: pl.Series, current: pl.Series, categorical: bool) -> tuple[str, float]:
    """(test name, p-value): chi-squared on category counts, else two-sample KS."""
    if categorical:
        levels = sorted(
            set(reference.drop_nulls().to_list()) | set(current.drop_nulls().to_list()), key=str
        )
        table = np.array([[(s == v).sum() for v in levels] for s in (reference, current)])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            return "chi2", 1.0
        return "chi2", float(stats.chi2_contingency(table)[1])
    ref = reference.drop_nulls().cast(pl.Float64).to_numpy()
    cur = current.drop_nulls().cast(pl.Float64).to_numpy()
    return "ks", float(stats.ks_2samp(ref, cur).pvalue)


def feature_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    features: list[str],
    categorical: list[str],
    psi_threshold: float = 0.2,
    p_threshold: float = 0.01,
) -> pl.DataFrame:
    """One row per feature, ranked by PSI: the tests, missing rates and a drifted flag."""
    rows = []
    for name in features:
        is_cat = name in categorical
        ref, cur = reference[name], current[name]
        psi = (
            psi_categorical(ref, cur)
            if is_cat
            else psi_numeric(ref.cast(pl.Float64).to_numpy(), cur.cast(pl.Float64).to_numpy())
        )
        test, p_value = drift_test(ref, cur, is_cat)
        rows.append(
            {
                "feature": name,
                "kind": "categorical" if is_cat else "numeric",
                "psi": psi,
                "test": test,
                "p_value": p_value,
                "reference_missing": ref.null_count() / max(len(ref), 1),
                "current_missing": cur.null_count() / max(len(cur), 1),
                "drifted": bool(psi > psi_threshold or p_value < p_threshold),
            }
        )
    table = pl.DataFrame(rows)
    return table.with_columns(
        (pl.col("current_missing") - pl.col("reference_missing")).alias("missing_change")
    ).sort("psi", descending=True, nulls_last=True)


@dataclass(frozen=True)
class DriftVerdict:
    """The numbers a retraining decision rests on, and the reasons it would fire."""

    drifted_features: list[str]
    drifted_share: float
    max_psi: float
    prediction_psi: float
    realized: Estimate | None
    champion_ci: tuple[float, float] | None
    reasons: list[str]
    prediction_psi_of: str = "score"  # or "P(<class>)": see PredictionDrift

    @property
    def retrain(self) -> bool:
        return bool(self.reasons)

    def metrics(self, metric: str) -> dict[str, float]:
        """The verdict's numbers, as a monitoring run logs them (``metric``: the primary)."""
        out = {
            "max_psi": self.max_psi,
            "drifted_share": self.drifted_share,
            "prediction_psi": self.prediction_psi,
        }
        if self.realized is not None:
            out |= {
                f"realized_{metric}": self.realized.value,
                f"realized_{metric}_ci_lower": self.realized.lower,
                f"realized_{metric}_ci_upper": self.realized.upper,
            }
        return {k: float(v) for k, v in out.items()}

    def summary(self, model_version: str) -> dict[str, object]:
        """The plain values a drift report records and ``RetrainSignal`` reads back."""
        return {
            "model_version": model_version,
            "drifted_features": ", ".join(self.drifted_features) or "none",
            "drifted_share": round(self.drifted_share, 4),
            "max_psi": round(self.max_psi, 4),
            "prediction_psi": round(self.prediction_psi, 4),
            "prediction_psi_of": self.prediction_psi_of,
            "retrain_recommended": self.retrain,
            "reasons": "; ".join(self.reasons) or "within thresholds",
        }


@dataclass(frozen=True)
class RetrainSignal:
    """What a recorded drift report says to the retraining sensor (see ``DriftVerdict.summary``)."""

    retrain: bool
    reasons: str
    drifted_features: str
    max_psi: float
    drifted_share: float
    model_version: str

    @classmethod
    def from_metadata(cls, meta: Mapping[str, object]) -> RetrainSignal:
        return cls(
            retrain=bool(meta.get("retrain_recommended")),
            reasons=str(meta.get("reasons", "within thresholds")),
            drifted_features=str(meta.get("drifted_features")),
            max_psi=float(meta.get("max_psi", 0.0)),  # type: ignore[arg-type]
            drifted_share=float(meta.get("drifted_share", 0.0)),  # type: ignore[arg-type]
            model_version=str(meta.get("model_version")),
        )


def verdict(
    table: pl.DataFrame,
    prediction: PredictionDrift,
    realized: Estimate | None,
    champion_ci: tuple[float, float] | None,
    greater_is_better: bool,
    max_drifted_share: float,
    max_psi: float,
) -> DriftVerdict:
    """Compare the day's drift with the spec's thresholds, and the day's realized metric
    (when labels have arrived) with the champion's test CI.

    One day holds few labels, so its metric is noisy: performance counts as degraded only when
    the day's own CI lies entirely on the wrong side of the champion's test CI, not when the
    point estimate merely dips below it.
    """
    drifted = table.filter(pl.col("drifted"))["feature"].to_list()
    share = len(drifted) / max(table.height, 1)
    top = float(table["psi"].max() or 0.0)
    reasons = []
    if share > max_drifted_share:
        reasons.append(
            f"{len(drifted)} of {table.height} features drifted ({share:.0%} > "
            f"{max_drifted_share:.0%}): {drifted}"
        )
    if top > max_psi:
        worst = table["feature"][0]
        reasons.append(f"max PSI {top:.3f} on '{worst}' > {max_psi}")
    if realized is not None and champion_ci is not None:
        lower, upper = champion_ci
        worse = realized.upper < lower if greater_is_better else realized.lower > upper
        if worse:
            reasons.append(
                f"realized {realized.fmt()} is entirely outside the champion's test CI "
                f"[{lower:.4f}, {upper:.4f}]"
            )
    return DriftVerdict(
        drifted, share, top, prediction.psi, realized, champion_ci, reasons, prediction.of
    )
