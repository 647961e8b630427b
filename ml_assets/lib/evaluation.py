"""Final evaluation on the test split: metrics with CIs, paired comparisons, diagnostics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from ml_assets.lib import fairness, intervals, multiclass
from ml_assets.lib.data import fingerprint
from ml_assets.lib.metrics import Estimate, Metric, get_metric
from ml_assets.lib.models import Model, target_of
from ml_assets.lib.spec import MLSpec

EvalRole = Literal["candidate", "baseline", "champion"]


@dataclass(frozen=True)
class Scored:
    """One model's test predictions and metrics with bootstrap CIs."""

    name: str
    role: EvalRole
    family: str
    scores: np.ndarray
    labels: np.ndarray | None
    metrics: dict[str, Estimate]


@dataclass(frozen=True)
class Evaluation:
    spec_name: str
    task: str
    primary: str
    test_rows: int
    test_fingerprint: str
    y_true: np.ndarray
    candidate: Scored
    baselines: list[Scored]
    best_baseline: str
    vs_baseline: Estimate
    champion: Scored | None = None
    vs_champion: Estimate | None = None
    # Segments (the spec's segment_columns, or predicted quartiles for regression) with the
    # primary metric and its CI per model, or backtest folds for forecasting.
    per_group: pl.DataFrame = field(default_factory=pl.DataFrame)
    per_class: pl.DataFrame | None = None  # precision, recall, F1 and support per class
    calibration: pl.DataFrame | None = None
    residuals: dict[str, float] | None = None
    importance: pl.DataFrame | None = None
    confidence: float = 0.95
    forecast: Any = None  # forecast_eval.ForecastDetails for forecasting specs
    interval_method: str = "percentile bootstrap intervals (rows resampled)"
    paired_test: str = "paired bootstrap over test rows"
    # Row positions (into the test rows) of the seeded sample that importance and scatter
    # plots use; None when they use every row.
    diagnostic_sample: np.ndarray | None = None
    # With cross-validation: the primary metric of every candidate and baseline on each fold
    # of train + validation, with mean and spread (cross_validation.selection_table), and how
    # the folds were made.
    selection: pl.DataFrame | None = None
    selection_folds: str = ""
    fairness: fairness.Fairness | None = None  # the candidate's, with a fairness section
    # A multiclass target's labels (the order of the probability columns and of y_true's
    # class index), and its confusion matrix of test rows; None for two classes.
    classes: list[str] | None = None
    confusion: pl.DataFrame | None = None

    @property
    def baseline(self) -> Scored:
        return next(b for b in self.baselines if b.name == self.best_baseline)

    def summary_table(self) -> pl.DataFrame:
        rows = [self.candidate, *self.baselines, *([self.champion] if self.champion else [])]
        return pl.DataFrame(
            [
                {"model": s.name, "role": s.role, **{m: e.fmt() for m, e in s.metrics.items()}}
                for s in rows
            ]
        )


@dataclass(frozen=True)
class Lineage:
    """What every number in the report traces back to."""

    spec_name: str
    spec_digest: str
    code_version: str
    data_fingerprint: str
    test_fingerprint: str
    candidate_run_id: str
    split_strategy: str
    split_rows: dict[str, int]


def select_best(val_metrics: dict[str, dict[str, float]], order: list[str]) -> str:
    """The model best on validation by the metrics in ``order`` (primary first, then ties)."""

    def key(name: str) -> tuple[float, ...]:
        signs = [1.0 if get_metric(m).greater_is_better else -1.0 for m in order]
        return tuple(s * val_metrics[name][m] for s, m in zip(signs, order, strict=True))

    return max(sorted(val_metrics), key=key)


def _score_model(
    spec: MLSpec, model: Model, role: EvalRole, test: pl.DataFrame, y: np.ndarray
) -> Scored:
    scores = model.predict(test)
    labels = model.labels(scores) if spec.task == "classification" else None
    metrics = {}
    for name in spec.all_metrics:
        metric = get_metric(name)
        values = labels if metric.kind == "label" else scores
        metrics[name] = estimate(spec, metric, y, values)
    return Scored(model.name, role, model.family, scores, labels, metrics)


def estimate(spec: MLSpec, metric: Metric, y: np.ndarray, values: np.ndarray) -> Estimate:
    """``metric`` with its CI as the spec's evaluation settings ask (bootstrap or, above
    ``bootstrap_max_rows``, influence-function intervals)."""
    cfg = spec.evaluation
    return intervals.metric_ci(
        metric,
        y,
        values,
        cfg.bootstrap_samples,
        cfg.confidence,
        spec.split.seed,
        cfg.bootstrap_max_rows,
    )


def paired_estimate(
    spec: MLSpec, metric: Metric, y: np.ndarray, new: np.ndarray, ref: np.ndarray
) -> Estimate:
    """The paired improvement of ``new`` over ``ref`` in ``metric`` (above 0: ``new`` is
    better), with its CI as the spec's evaluation settings ask."""
    cfg = spec.evaluation
    return intervals.paired_improvement(
        metric,
        y,
        new,
        ref,
        cfg.bootstrap_samples,
        cfg.confidence,
        spec.split.seed,
        cfg.bootstrap_max_rows,
    )


def evaluate(
    spec: MLSpec,
    test: pl.DataFrame,
    candidate: Model,
    baselines: list[Model],
    best_baseline: str,
    champion: Model | None = None,
) -> Evaluation:
    """Score the selected candidate, every baseline and the current champion on ``test``."""
    y = target_of(spec, test, candidate)
    cand = _score_model(spec, candidate, "candidate", test, y)
    bases = [_score_model(spec, b, "baseline", test, y) for b in baselines]
    ref = next(b for b in bases if b.name == best_baseline)
    primary = get_metric(spec.primary_metric)
    cfg, seed = spec.evaluation, spec.split.seed

    def paired(other: Scored) -> Estimate:
        return paired_estimate(
            spec, primary, y, _pick(primary.kind, cand), _pick(primary.kind, other)
        )

    champ = _score_model(spec, champion, "champion", test, y) if champion else None
    fair = None
    if spec.fairness is not None and cand.labels is not None:
        fair = fairness.assess(
            {c: test[c].to_numpy() for c in spec.fairness.columns},
            y,
            cand.labels,
            disparities=tuple(spec.fairness.metrics),
            bound=spec.fairness.max_disparity,
            blocking=spec.fairness.block,
            samples=cfg.bootstrap_samples,
            confidence=cfg.confidence,
            seed=seed,
            max_rows=cfg.bootstrap_max_rows,
            min_group_rows=spec.fairness.min_group_rows,
        )
    sample = diagnostic_sample(test.height, cfg.diagnostic_rows, seed)
    method = intervals.interval_method(primary, test.height, cfg.bootstrap_max_rows)
    return Evaluation(
        spec.name,
        spec.task,
        spec.primary_metric,
        test.height,
        fingerprint(test),
        y,
        cand,
        bases,
        best_baseline,
        paired(ref),
        champ,
        paired(champ) if champ else None,
        per_group_metrics(spec, test, y, cand, ref),
        per_class_metrics(y, cand.labels, candidate.classes) if cand.labels is not None else None,
        _calibration(y, cand, cfg.calibration_bins) if spec.task == "classification" else None,
        residual_summary(y, cand.scores) if spec.task == "regression" else None,
        candidate.importance(test if sample is None else test[sample]),
        confidence=cfg.confidence,
        interval_method=intervals.describe(method, cfg.bootstrap_samples, cfg.bootstrap_max_rows),
        paired_test="paired bootstrap over test rows"
        if method == "bootstrap"
        else "paired normal test with influence-function standard errors over test rows",
        diagnostic_sample=sample,
        fairness=fair,
        classes=[str(c) for c in candidate.classes] if candidate.classes else None,
        confusion=multiclass.confusion_table(y, cand.labels, candidate.classes)
        if candidate.classes and cand.labels is not None
        else None,
    )


def _calibration(y: np.ndarray, scored: Scored, bins: int) -> pl.DataFrame:
    """Calibration bins of P(positive) or, for K classes, of the top class's probability
    against how often the top class is the true one (its accuracy)."""
    if scored.scores.ndim == 2 and scored.labels is not None:
        correct = (scored.labels == y).astype(np.float64)
        return calibration_table(correct, multiclass.top_class_confidence(scored.scores), bins)
    return calibration_table(y, scored.scores, bins)


def diagnostic_sample(rows: int, limit: int, seed: int) -> np.ndarray | None:
    """Sorted positions of a seeded sample of ``limit`` rows, or None when ``rows`` fit.

    Feature importance (TreeSHAP costs about a millisecond per row) and scatter plots gain
    nothing from more rows than this; every metric, CI, calibration bin and segment still uses
    every test row.
    """
    if rows <= limit:
        return None
    return np.sort(np.random.default_rng([seed, 2]).choice(rows, size=limit, replace=False))


def per_class_metrics(
    y: np.ndarray, labels: np.ndarray, classes: list[object] | None = None
) -> pl.DataFrame:
    """Precision, recall, F1 and support of each class at the decision threshold (for K
    ``classes``, the label being the most probable class)."""
    if classes:
        return multiclass.per_class_table(y, labels, classes)
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, n = precision_recall_fscore_support(y, labels, labels=[0, 1], zero_division=0)
    return pl.DataFrame(
        {
            "class": ["negative", "positive"],
            "rows": [int(v) for v in n],
            "precision": [float(v) for v in p],
            "recall": [float(v) for v in r],
            "f1": [float(v) for v in f],
        }
    )


def per_group_metrics(
    spec: MLSpec, test: pl.DataFrame, y: np.ndarray, cand: Scored, ref: Scored
) -> pl.DataFrame:
    """The primary metric with its CI for the candidate and the best baseline, and the paired
    improvement, in each segment: each value of the spec's segment columns (for regression
    without any, each quartile of the prediction). A segment where the metric is undefined
    (one class only, for a ranking metric) has NaN and says why in ``note``."""
    segments = {c: test[c].to_numpy() for c in spec.evaluation.segment_columns}
    if spec.task == "regression" and not segments:
        quartile = np.searchsorted(
            np.quantile(cand.scores, [0.25, 0.5, 0.75]), cand.scores, side="right"
        )
        segments["predicted_quartile"] = quartile + 1
    metric = get_metric(spec.primary_metric)
    rows: list[dict[str, object]] = []
    for column, values in segments.items():
        for value in sorted(set(values.tolist()), key=str):
            mask = values == value
            row: dict[str, object] = {"group": column, "value": str(value), "rows": int(mask.sum())}
            defined = metric.kind != "score" or len(np.unique(y[mask])) > 1
            new, old = _pick(metric.kind, cand)[mask], _pick(metric.kind, ref)[mask]
            names = (f"candidate_{metric.name}", f"baseline_{metric.name}", "improvement")
            found = (
                (
                    estimate(spec, metric, y[mask], new),
                    estimate(spec, metric, y[mask], old),
                    paired_estimate(spec, metric, y[mask], new, old),
                )
                if defined
                else (None, None, None)
            )
            nan = float("nan")
            for name, est in zip(names, found, strict=True):
                row[name] = est.value if est else nan
                row[f"{name}_lower"] = est.lower if est else nan
                row[f"{name}_upper"] = est.upper if est else nan
            row["note"] = "" if defined else f"one class only: {metric.name} undefined"
            rows.append(row)
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def _pick(kind: str, scored: Scored) -> np.ndarray:
    return scored.labels if kind == "label" and scored.labels is not None else scored.scores


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int) -> pl.DataFrame:
    """Mean predicted vs observed positive rate per quantile bin of the score."""
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    frame = pl.DataFrame({"bin": idx, "p": p, "y": y})
    return (
        frame.group_by("bin")
        .agg(
            pl.len().alias("rows"),
            pl.col("p").mean().alias("mean_predicted"),
            pl.col("y").mean().alias("observed_rate"),
        )
        .sort("bin")
    )


def expected_calibration_error(table: pl.DataFrame) -> float:
    weights = table["rows"] / table["rows"].sum()
    return float((weights * (table["mean_predicted"] - table["observed_rate"]).abs()).sum())


def residual_summary(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    res = y - pred
    q = np.quantile(res, [0.05, 0.5, 0.95])
    return {
        "mean": float(res.mean()),
        "std": float(res.std()),
        "p05": float(q[0]),
        "median": float(q[1]),
        "p95": float(q[2]),
    }


def tracking_metrics(ev: Evaluation) -> dict[str, float]:
    """The test-split numbers logged on the candidate's MLflow run, for scripts and CI."""
    p = ev.primary
    cand, base = ev.candidate.metrics[p], ev.baseline.metrics[p]
    out = {
        f"test_{p}": cand.value,
        f"test_{p}_ci_lower": cand.lower,
        f"test_{p}_ci_upper": cand.upper,
        f"baseline_test_{p}": base.value,
        **{f"test_{m}": e.value for m, e in ev.candidate.metrics.items() if m != p},
        f"improvement_vs_baseline_{p}": ev.vs_baseline.value,
        f"improvement_vs_baseline_{p}_ci_lower": ev.vs_baseline.lower,
    }
    seasonal = ev.forecast.vs_seasonal_naive if ev.forecast is not None else None
    if seasonal is not None:  # forecasts: the Diebold-Mariano test against seasonal naive
        out |= {
            "dm_statistic_vs_seasonal_naive": seasonal.statistic,
            "dm_p_value_vs_seasonal_naive": seasonal.p_value,
        }
    if ev.champion is not None and ev.vs_champion is not None:
        # The champion scored on the same test rows: what a retraining decision rests on.
        out |= {
            f"champion_test_{p}": ev.champion.metrics[p].value,
            f"improvement_vs_champion_{p}": ev.vs_champion.value,
            f"improvement_vs_champion_{p}_ci_lower": ev.vs_champion.lower,
            f"improvement_vs_champion_{p}_ci_upper": ev.vs_champion.upper,
        }
    return out
