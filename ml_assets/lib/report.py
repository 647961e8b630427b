"""Self-contained HTML evaluation report (plots embedded as PNG) and the model card."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import polars as pl

from ml_assets.lib.drift import DriftVerdict
from ml_assets.lib.evaluation import Evaluation, Lineage, expected_calibration_error
from ml_assets.lib.gate import GateDecision


def _figure_png(fig: object) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return base64.b64encode(buffer.getvalue()).decode()


def plots(ev: Evaluation) -> dict[str, str]:
    """Named PNG plots (base64) for the evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    out: dict[str, str] = {}
    if ev.task == "classification":
        out |= _classification_plots(ev)
    elif ev.task == "forecasting":
        out |= _forecast_plots(ev)
    else:
        out |= _regression_plots(ev)
    if ev.importance is not None and ev.importance.height:
        out["Feature importance"] = _importance_plot(ev.importance)
    return out


def _classification_plots(ev: Evaluation) -> dict[str, str]:
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

    models = [ev.candidate, *ev.baselines, *([ev.champion] if ev.champion else [])]
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for s in models:
        fpr, tpr, _ = roc_curve(ev.y_true, s.scores)
        roc_ax.plot(*_curve(fpr, tpr), label=f"{s.name} ({s.role})")
        if np.ptp(s.scores) > 0:  # a constant score has no PR curve, only the no-skill level
            prec, rec, _ = precision_recall_curve(ev.y_true, s.scores)
            pr_ax.plot(*_curve(rec, prec), label=f"{s.name} ({s.role})")
    pr_ax.axhline(float(ev.y_true.mean()), color="k", ls=":", lw=0.8, label="no skill (prevalence)")
    roc_ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    roc_ax.set(title="ROC (test)", xlabel="false positive rate", ylabel="true positive rate")
    pr_ax.set(title="Precision-recall (test)", xlabel="recall", ylabel="precision")
    roc_ax.legend(fontsize=8)
    pr_ax.legend(fontsize=8)
    out = {"ROC and precision-recall curves": _figure_png(fig)}
    if ev.calibration is not None:
        fig, ax = plt.subplots(figsize=(5, 4.5))
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.plot(ev.calibration["mean_predicted"], ev.calibration["observed_rate"], "o-")
        ece = expected_calibration_error(ev.calibration)
        ax.set(
            title=f"Calibration, candidate (ECE {ece:.3f})",
            xlabel="mean predicted",
            ylabel="observed",
        )
        out["Calibration"] = _figure_png(fig)
    if ev.candidate.labels is not None:
        cm = confusion_matrix(ev.y_true, ev.candidate.labels, labels=[0, 1])
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center")
        ax.set(
            title="Confusion matrix, candidate",
            xlabel="predicted",
            ylabel="actual",
            xticks=[0, 1],
            yticks=[0, 1],
        )
        out["Confusion matrix"] = _figure_png(fig)
    return out


def _regression_plots(ev: Evaluation) -> dict[str, str]:
    import matplotlib.pyplot as plt

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
    out = {"Residuals": _figure_png(fig)}
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.hist(residuals, bins=50)
    ax.set(title="Residual distribution", xlabel="actual - predicted")
    out["Residual distribution"] = _figure_png(fig)
    return out


def _band(ax: object, frame: pl.DataFrame, label: str, color: str) -> None:
    t = frame["time"].to_list()
    ax.plot(t, frame["mean"].to_list(), color=color, label=label)  # type: ignore[attr-defined]
    if not frame["lower"].is_nan().all():
        ax.fill_between(  # type: ignore[attr-defined]
            t, frame["lower"].to_list(), frame["upper"].to_list(), color=color, alpha=0.2
        )


def _forecast_plots(ev: Evaluation) -> dict[str, str]:
    import matplotlib.pyplot as plt

    fd, cand, base = ev.forecast, ev.candidate.name, ev.best_baseline
    out = {}
    fig, ax = plt.subplots(figsize=(11, 4.5))
    tail = fd.history.tail(3 * max(ev.test_rows, 1))
    ax.plot(tail["time"].to_list(), tail["actual"].to_list(), "k-", lw=0.8, label="history")
    holdout = fd.holdout.filter(pl.col("model") == cand)
    ax.plot(holdout["time"].to_list(), holdout["actual"].to_list(), "k.", ms=4, label="actual")
    _band(ax, holdout, f"{cand} (candidate)", "tab:blue")
    _band(ax, fd.holdout.filter(pl.col("model") == base), f"{base} (best baseline)", "tab:orange")
    if ev.champion is not None:
        _band(ax, fd.holdout.filter(pl.col("model") == ev.champion.name), "champion", "tab:green")
    ax.set(title=f"Holdout: forecast vs actual ({ev.confidence:.0%} intervals)")
    ax.legend(fontsize=8)
    out["Holdout forecast"] = _figure_png(fig)
    folds = sorted(set(fd.backtests["fold"].to_list()))
    fig, axes = plt.subplots(len(folds), 1, figsize=(11, 2.6 * len(folds)), squeeze=False)
    for ax, fold in zip(axes[:, 0], folds, strict=True):
        part = fd.backtests.filter((pl.col("fold") == fold) & (pl.col("model") == cand))
        ax.plot(part["time"].to_list(), part["actual"].to_list(), "k.", ms=3, label="actual")
        _band(ax, part, cand, "tab:blue")
        ax.set(title=f"Backtest fold {fold}")
    out["Backtest folds"] = _figure_png(fig)
    fig, ax = plt.subplots(figsize=(8, 4))
    for name in (cand, base):
        part = fd.step_errors.filter(pl.col("model") == name)
        ax.plot(part["step"].to_list(), part["abs_error"].to_list(), label=name)
    ax.set(title="Mean absolute error by horizon step (folds + holdout)", xlabel="step")
    ax.legend(fontsize=8)
    out["Error by horizon step"] = _figure_png(fig)
    return out


def _importance_plot(importance: pl.DataFrame) -> str:
    import matplotlib.pyplot as plt

    top = (
        importance.filter(pl.col("feature") != "const").sort("importance", descending=True).head(20)
    )
    fig, ax = plt.subplots(figsize=(6, 0.3 * top.height + 1.5))
    ax.barh(top["feature"].to_list()[::-1], top["importance"].to_list()[::-1])
    ax.set(title="Feature importance (mean |SHAP| or |standardised coefficient|)")
    return _figure_png(fig)


def _table_html(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def markdown_table(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return "(none)"
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.width]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join(lines)


def _interval_kind(ev: Evaluation) -> str:
    if ev.forecast is not None:
        return "intervals of mean per-step loss with Newey-West variance (autocorrelated errors)"
    return ev.interval_method


def _sampling_note(ev: Evaluation) -> str:
    """Which parts of the report use a sample of the test rows, and why."""
    if ev.diagnostic_sample is None:
        return "Every part of this report uses every test row."
    return (
        f"Feature importance and the scatter plots use a seeded sample of "
        f"{len(ev.diagnostic_sample):,} of the {ev.test_rows:,} test rows "
        "(evaluation.diagnostic_rows): TreeSHAP costs about a millisecond per row and its mean "
        "absolute values settle well before that; every metric, interval, calibration bin, "
        "segment and curve uses every test row."
    )


def _curve(x: np.ndarray, y: np.ndarray, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` vertices of a curve computed on every row (ends kept)."""
    if len(x) <= points:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
    return x[keep], y[keep]


def render_html(ev: Evaluation, decision: GateDecision, lineage: Lineage) -> str:
    """The whole report as one HTML document with no external references."""
    sections = [
        f"<h1>Evaluation report: {html.escape(ev.spec_name)}</h1>",
        f"<p><b>Decision:</b> {'PROMOTE' if decision.promote else 'NOT PROMOTED'}</p>",
        f"<p>Primary metric <b>{ev.primary}</b> on {ev.test_rows} test rows. Intervals are "
        f"{ev.confidence:.0%} {_interval_kind(ev)}. {html.escape(_sampling_note(ev))}</p>",
        "<h2>Metrics on the test split</h2>",
        _table_html(ev.summary_table()),
        "<h2>Candidate vs best baseline (paired test)</h2>",
        f"<p>Improvement in {ev.primary} over '{ev.best_baseline}': {ev.vs_baseline.fmt()}"
        " (positive = candidate better)</p>",
    ]
    if ev.vs_champion is not None:
        sections.append(f"<p>Improvement over the current champion: {ev.vs_champion.fmt()}</p>")
    sections += [
        "<h2>Promotion gate</h2>",
        _table_html(
            pl.DataFrame(
                [
                    {"criterion": c.name, "passed": c.passed, "detail": c.detail}
                    for c in decision.criteria
                ]
            )
        ),
    ]
    if ev.forecast is not None:
        dm = ev.forecast.dm
        sections.append(
            f"<p>Diebold-Mariano test on holdout {ev.primary} losses (Newey-West variance): "
            f"statistic {dm.statistic:.3f}, p-value {dm.p_value:.4g}.</p>"
        )
    sections += ["<h2>Per class / segment / backtest fold</h2>", _table_html(ev.per_group)]
    if ev.residuals:
        sections += ["<h2>Residuals</h2>", _table_html(pl.DataFrame([ev.residuals]))]
    if ev.calibration is not None:
        sections += ["<h2>Calibration table</h2>", _table_html(ev.calibration)]
    if ev.importance is not None:
        sections += ["<h2>Feature importance</h2>", _table_html(ev.importance.head(30))]
    for title, png in plots(ev).items():
        sections += [f"<h2>{html.escape(title)}</h2>", f'<img src="data:image/png;base64,{png}"/>']
    sections += [
        "<h2>Lineage</h2>",
        _table_html(pl.DataFrame([{"item": k, "value": str(v)} for k, v in vars(lineage).items()])),
    ]
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )


def model_card(ev: Evaluation, decision: GateDecision, lineage: Lineage, description: str) -> str:
    """Markdown model card for a registered version."""
    cand = ev.candidate
    metrics = "\n".join(f"- {m}: {e.fmt()}" for m, e in cand.metrics.items())
    base = ev.baseline.metrics[ev.primary]
    rows = ", ".join(f"{k} {v}" for k, v in lineage.split_rows.items())
    status = "promoted to champion" if decision.promote else "NOT promoted"
    reasons = "\n".join(f"- {r}" for r in decision.reasons) or "- none"
    return f"""# Model card: {ev.spec_name} ({cand.name})

## Intended use
{description or "See the spec."} Scores rows with the same columns as the training data.

## Data
- spec digest {lineage.spec_digest}, code version {lineage.code_version}
- training data fingerprint {lineage.data_fingerprint}; test fingerprint {lineage.test_fingerprint}
- split: {lineage.split_strategy}; rows: {rows}

## Metrics on the test split ({ev.confidence:.0%} CI: {_interval_kind(ev)})
{metrics}
- best baseline '{ev.best_baseline}' {ev.primary}: {base.fmt()}
- paired improvement over it: {ev.vs_baseline.fmt()}

## Promotion
{status}. Failed criteria:
{reasons}

## Limitations
- Evaluated on one held-out split of {ev.test_rows} rows; intervals reflect sampling
  variation only, not shifts in population or time.
- Trained on data with fingerprint {lineage.data_fingerprint}; data outside the learned contract
  (ranges, categories) is rejected by validation, and scores for it are not supported.
"""


def render_drift_html(
    title: str,
    verdict: DriftVerdict,
    table: pl.DataFrame,
    reference: pl.DataFrame,
    current: pl.DataFrame,
    scores: tuple[np.ndarray, np.ndarray],
    top: int = 6,
) -> str:
    """One day's drift report: the verdict, the ranked table, and reference-vs-day
    distributions of the most drifted features and of the predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = table["feature"].head(top).to_list()
    kinds = dict(zip(table["feature"].to_list(), table["kind"].to_list(), strict=True))
    fig, axes = plt.subplots(
        (len(names) + 2) // 3 + 1, 3, figsize=(12, 3 * ((len(names) + 2) // 3 + 1))
    )
    flat = list(np.ravel(axes))
    _overlay(flat[0], scores[0], scores[1], "predicted score")
    for ax, name in zip(flat[1:], names, strict=False):
        if kinds[name] == "categorical":
            _bars(ax, reference[name], current[name], name)
        else:
            ref = reference[name].drop_nulls().cast(pl.Float64).to_numpy()
            _overlay(ax, ref, current[name].drop_nulls().cast(pl.Float64).to_numpy(), name)
    for ax in flat[len(names) + 1 :]:
        ax.axis("off")
    fig.tight_layout()
    png = _figure_png(fig)
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in verdict.reasons) or "<li>none</li>"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p><b>Retraining recommended:</b> {'YES' if verdict.retrain else 'no'}</p>",
        f"<ul>{reasons}</ul>",
        f"<p>Prediction PSI {verdict.prediction_psi:.4f}; drifted share "
        f"{verdict.drifted_share:.0%}; max PSI {verdict.max_psi:.4f}.</p>",
        "<h2>Features ranked by drift</h2>",
        _table_html(table),
        "<h2>Reference (champion's training sample) vs this day</h2>",
        f'<img src="data:image/png;base64,{png}"/>',
    ]
    style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto}td,th{padding:3px 8px}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )


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
