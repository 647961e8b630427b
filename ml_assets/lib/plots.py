"""The report's and the drift page's figures, each returned as a base64 PNG (Agg backend)."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from ml_assets.lib.evaluation import Evaluation, expected_calibration_error

if TYPE_CHECKING:
    from ml_assets.lib.drift import PredictionDrift

# Names of the figures ``plots`` returns; the report places each in its section.
CURVES = "ROC and precision-recall curves"
CALIBRATION = "Calibration"
CONFUSION = "Confusion matrix"
RESIDUALS = "Residuals"
RESIDUAL_DISTRIBUTION = "Residual distribution"
IMPORTANCE = "Feature importance"
HOLDOUT = "Holdout forecast"
BACKTESTS = "Backtest folds"
STEP_ERRORS = "Error by horizon step"
FAIRNESS = "Rates per group"


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: object) -> str:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return base64.b64encode(buffer.getvalue()).decode()


def plots(ev: Evaluation) -> dict[str, str]:
    """Named PNG plots (base64) for the evaluation."""
    if ev.task == "classification":
        out = _classification_plots(ev)
    elif ev.task == "forecasting":
        out = _forecast_plots(ev)
    else:
        out = _regression_plots(ev)
    if ev.importance is not None and ev.importance.height:
        out[IMPORTANCE] = _importance_plot(ev.importance)
    if ev.fairness is not None and ev.fairness.groups.height:
        out[FAIRNESS] = _fairness_plot(ev.fairness.groups)
    return out


def _fairness_plot(groups: pl.DataFrame) -> str:
    """Selection rate, TPR and FPR per group with their intervals, one panel per column."""
    plt = _pyplot()
    columns = groups["column"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 3.2), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        part = groups.filter(pl.col("column") == column)
        x = np.arange(part.height)
        for i, rate in enumerate(("selection_rate", "tpr", "fpr")):
            value = part[rate].to_numpy()
            err = np.abs(np.stack([value - part[f"{rate}_lower"], part[f"{rate}_upper"] - value]))
            ax.bar(x + (i - 1) * 0.27, value, 0.27, yerr=np.nan_to_num(err), capsize=2, label=rate)
        ax.set_xticks(x, part["group"].to_list())
        ax.set_title(column)
        ax.set_ylim(0, 1)
    axes[0][0].legend(fontsize=8)
    return figure_png(fig)


def curve(x: np.ndarray, y: np.ndarray, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` vertices of a curve computed on every row (ends kept)."""
    if len(x) <= points:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
    return x[keep], y[keep]


def _classification_plots(ev: Evaluation) -> dict[str, str]:
    plt = _pyplot()
    out = {CURVES: _curves(ev) if ev.classes is None else _one_vs_rest_curves(ev)}
    if ev.calibration is not None:
        fig, ax = plt.subplots(figsize=(5, 4.5))
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.plot(ev.calibration["mean_predicted"], ev.calibration["observed_rate"], "o-")
        ece = expected_calibration_error(ev.calibration)
        binary = ev.classes is None
        ax.set(
            title=f"Calibration, candidate (ECE {ece:.3f})",
            xlabel="mean predicted" if binary else "mean probability of the top class",
            ylabel="observed" if binary else "share of rows whose top class is true",
        )
        out[CALIBRATION] = figure_png(fig)
    if ev.candidate.labels is not None:
        out[CONFUSION] = _confusion(ev)
    return out


def _curves(ev: Evaluation) -> str:
    """ROC and precision-recall curves of every model (two classes)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _pyplot()
    models = [ev.candidate, *ev.baselines, *([ev.champion] if ev.champion else [])]
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for s in models:
        fpr, tpr, _ = roc_curve(ev.y_true, s.scores)
        roc_ax.plot(*curve(fpr, tpr), label=f"{s.name} ({s.role})")
        if np.ptp(s.scores) > 0:  # a constant score has no PR curve, only the no-skill level
            prec, rec, _ = precision_recall_curve(ev.y_true, s.scores)
            pr_ax.plot(*curve(rec, prec), label=f"{s.name} ({s.role})")
    pr_ax.axhline(float(ev.y_true.mean()), color="k", ls=":", lw=0.8, label="no skill (prevalence)")
    roc_ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    roc_ax.set(title="ROC (test)", xlabel="false positive rate", ylabel="true positive rate")
    pr_ax.set(title="Precision-recall (test)", xlabel="recall", ylabel="precision")
    roc_ax.legend(fontsize=8)
    pr_ax.legend(fontsize=8)
    return figure_png(fig)


def _one_vs_rest_curves(ev: Evaluation) -> str:
    """The candidate's ROC and precision-recall curve of each class against the rest."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    assert ev.classes is not None
    plt = _pyplot()
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for k, label in enumerate(ev.classes):
        y, p = ev.y_true == k, ev.candidate.scores[:, k]
        if y.all() or not y.any():
            continue
        fpr, tpr, _ = roc_curve(y, p)
        roc_ax.plot(*curve(fpr, tpr), label=f"{label} vs rest")
        prec, rec, _ = precision_recall_curve(y, p)
        pr_ax.plot(*curve(rec, prec), label=f"{label} (prevalence {y.mean():.2f})")
    roc_ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    name = ev.candidate.name
    roc_ax.set(
        title=f"ROC one-vs-rest, {name} (test)",
        xlabel="false positive rate",
        ylabel="true positive rate",
    )
    pr_ax.set(
        title=f"Precision-recall one-vs-rest, {name} (test)", xlabel="recall", ylabel="precision"
    )
    roc_ax.legend(fontsize=8)
    pr_ax.legend(fontsize=8)
    return figure_png(fig)


def _confusion(ev: Evaluation) -> str:
    """Test rows by actual and predicted class of the candidate, counts in the cells."""
    from sklearn.metrics import confusion_matrix

    assert ev.candidate.labels is not None
    plt = _pyplot()
    names = ev.classes or ["negative", "positive"]
    ticks = list(range(len(names)))
    cm = confusion_matrix(ev.y_true, ev.candidate.labels, labels=ticks)
    side = 4 + 0.6 * max(len(names) - 2, 0)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(cm, cmap="Blues", vmin=0)
    for (i, j), v in np.ndenumerate(cm):
        # White on the dark cells, black on the light ones.
        ink = "white" if v > cm.max() / 2 else "black"
        ax.text(j, i, f"{v:,}", ha="center", va="center", color=ink, fontsize=12)
    ax.set(title="Confusion matrix, candidate", xlabel="predicted", ylabel="actual")
    ax.set_xticks(ticks, names, rotation=30 if len(names) > 2 else 0)
    ax.set_yticks(ticks, names)
    return figure_png(fig)


def _regression_plots(ev: Evaluation) -> dict[str, str]:
    plt = _pyplot()
    pred, y = ev.candidate.scores, ev.y_true
    residuals = y - pred
    if ev.diagnostic_sample is not None:
        pred, y = pred[ev.diagnostic_sample], y[ev.diagnostic_sample]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    a.scatter(pred, y, s=6, alpha=0.4)
    lim = [min(pred.min(), y.min()), max(pred.max(), y.max())]
    a.plot(lim, lim, "k:", lw=0.8)
    a.set(title="Actual vs predicted (test)", xlabel="predicted", ylabel="actual")
    b.scatter(pred, y - pred, s=6, alpha=0.4)
    b.axhline(0, color="k", lw=0.8)
    b.set(title="Residuals vs predicted", xlabel="predicted", ylabel="actual - predicted")
    out = {RESIDUALS: figure_png(fig)}
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.hist(residuals, bins=50)
    ax.set(title="Residual distribution", xlabel="actual - predicted")
    out[RESIDUAL_DISTRIBUTION] = figure_png(fig)
    return out


def _band(ax: object, frame: pl.DataFrame, label: str, color: str) -> None:
    t = frame["time"].to_list()
    ax.plot(t, frame["mean"].to_list(), color=color, label=label)  # type: ignore[attr-defined]
    if not frame["lower"].is_nan().all():
        ax.fill_between(  # type: ignore[attr-defined]
            t, frame["lower"].to_list(), frame["upper"].to_list(), color=color, alpha=0.2
        )


def _dates(ax: object, times: pl.Series) -> None:
    """Concise date ticks that do not run into each other (for a time axis of dates)."""
    import matplotlib.dates as mdates

    if not times.dtype.is_temporal() or times.n_unique() < 2:
        return
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)  # type: ignore[attr-defined]
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[attr-defined]


def _forecast_plots(ev: Evaluation) -> dict[str, str]:
    plt = _pyplot()
    fd, cand, base = ev.forecast, ev.candidate.name, ev.best_baseline
    out = {}
    fig, ax = plt.subplots(figsize=(11, 4.5), layout="constrained")
    tail = fd.history.tail(3 * max(ev.test_rows, 1))
    ax.plot(tail["time"].to_list(), tail["actual"].to_list(), "k-", lw=0.8, label="history")
    holdout = fd.holdout.filter(pl.col("model") == cand)
    ax.plot(holdout["time"].to_list(), holdout["actual"].to_list(), "k.", ms=4, label="actual")
    _band(ax, holdout, f"{cand} (candidate)", "tab:blue")
    _band(ax, fd.holdout.filter(pl.col("model") == base), f"{base} (best baseline)", "tab:orange")
    if ev.champion is not None:
        _band(ax, fd.holdout.filter(pl.col("model") == ev.champion.name), "champion", "tab:green")
    ax.set(title=f"Holdout: forecast vs actual ({ev.confidence:.0%} intervals)")
    _dates(ax, tail["time"])
    ax.legend(fontsize=8)
    out[HOLDOUT] = figure_png(fig)
    folds = sorted(set(fd.backtests["fold"].to_list()))
    columns = 2 if len(folds) > 1 else 1
    rows = (len(folds) + columns - 1) // columns
    fig, axes = plt.subplots(
        rows, columns, figsize=(11, 3.0 * rows), squeeze=False, layout="constrained"
    )
    flat = list(np.ravel(axes))
    for ax, fold in zip(flat, folds, strict=False):
        part = fd.backtests.filter((pl.col("fold") == fold) & (pl.col("model") == cand))
        ax.plot(part["time"].to_list(), part["actual"].to_list(), "k.", ms=3, label="actual")
        _band(ax, part, cand, "tab:blue")
        ax.set_title(f"Backtest fold {fold}", fontsize=10)
        _dates(ax, part["time"])
    for ax in flat[len(folds) :]:
        ax.axis("off")
    flat[0].legend(fontsize=8)
    out[BACKTESTS] = figure_png(fig)
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    for name in (cand, base):
        part = fd.step_errors.filter(pl.col("model") == name)
        ax.plot(part["step"].to_list(), part["abs_error"].to_list(), label=name)
    ax.set(title="Mean absolute error by horizon step (folds + holdout)", xlabel="step")
    ax.legend(fontsize=8)
    out[STEP_ERRORS] = figure_png(fig)
    return out


def _importance_plot(importance: pl.DataFrame) -> str:
    plt = _pyplot()
    rows = importance.filter(pl.col("feature") != "const")
    if "class" in rows.columns:  # a coefficient per class: the largest of each feature
        rows = rows.group_by("feature", maintain_order=True).agg(pl.col("importance").max())
    top = rows.sort("importance", descending=True).head(20)
    fig, ax = plt.subplots(figsize=(7, 0.3 * top.height + 1.5))
    values = top["importance"].to_list()[::-1]
    bars = ax.barh(top["feature"].to_list()[::-1], values)
    ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=8, padding=2)
    ax.set(title="Feature importance (mean |SHAP| or |standardised coefficient|)")
    ax.margins(x=0.15)
    return figure_png(fig)


def drift_figure(
    table: pl.DataFrame,
    reference: pl.DataFrame,
    current: pl.DataFrame,
    prediction: PredictionDrift,
    top: int,
) -> str:
    """Reference vs day distributions of the predictions (the score, or the class
    probability that drifted most) and the ``top`` most drifted features (``table`` ranked
    by drift)."""
    plt = _pyplot()
    names = table["feature"].head(top).to_list()
    kinds = dict(zip(table["feature"].to_list(), table["kind"].to_list(), strict=True))
    rows = (len(names) + 2) // 3 + 1
    fig, axes = plt.subplots(rows, 3, figsize=(12, 3 * rows), layout="constrained")
    flat = list(np.ravel(axes))
    label = "predicted score" if prediction.of == "score" else f"predicted {prediction.of}"
    _overlay(flat[0], prediction.reference, prediction.current, label)
    for ax, name in zip(flat[1:], names, strict=False):
        if kinds[name] == "categorical":
            _bars(ax, reference[name], current[name], name)
        else:
            ref = reference[name].drop_nulls().cast(pl.Float64).to_numpy()
            _overlay(ax, ref, current[name].drop_nulls().cast(pl.Float64).to_numpy(), name)
    for ax in flat[len(names) + 1 :]:
        ax.axis("off")
    return figure_png(fig)


def _overlay(ax: object, reference: np.ndarray, current: np.ndarray, name: str) -> None:
    both = np.concatenate([reference, current])
    if both.size == 0:
        ax.set(title=f"{name}: no values")  # type: ignore[attr-defined]
        return
    bins = np.histogram_bin_edges(both, bins=30)
    for values, label in ((reference, "reference"), (current, "day")):
        ax.hist(values, bins=bins, density=True, alpha=0.5, label=label)  # type: ignore[attr-defined]
    ax.set(title=name)  # type: ignore[attr-defined]
    ax.legend()  # type: ignore[attr-defined]


def _bars(ax: object, reference: pl.Series, current: pl.Series, name: str) -> None:
    ref = reference.cast(pl.String).fill_null("(missing)")
    cur = current.cast(pl.String).fill_null("(missing)")
    levels = sorted(set(ref.to_list()) | set(cur.to_list()))
    x = np.arange(len(levels))
    for offset, series, label in ((-0.2, ref, "reference"), (0.2, cur, "day")):
        shares = [float((series == v).mean()) for v in levels]
        ax.bar(x + offset, shares, width=0.4, label=label)  # type: ignore[attr-defined]
    ax.set(title=name, xticks=x, xticklabels=levels)  # type: ignore[attr-defined]
    ax.legend()  # type: ignore[attr-defined]
