"""Self-contained HTML evaluation report and drift page (plots embedded as PNG, links only to
the MLflow and Dagster runs), and the model card."""

from __future__ import annotations

import datetime as dt
import html

import numpy as np
import polars as pl

from ml_assets.lib import plots as plot_lib
from ml_assets.lib.drift import DriftVerdict, PredictionDrift
from ml_assets.lib.evaluation import Evaluation, Lineage
from ml_assets.lib.gate import GateDecision
from ml_assets.lib.metrics import Estimate

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;"
    "color:#222}h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:left}th{background:#f3f3f3}.meta{color:#555}.meta a{margin-right:1em}"
    ".verdict{padding:.7em 1em;border-radius:6px;margin:1em 0;font-size:1.05em}"
    ".good{background:#e6f4ea;border:2px solid #1e8e3e}.bad{background:#fce8e6;"
    "border:2px solid #d93025}.verdict ul{margin:.3em 0 0}td.pass{color:#1e8e3e;"
    "font-weight:bold}td.fail{color:#d93025;font-weight:bold}img{max-width:100%}"
    "details{margin:.5em 0}"
)


def _page(body: list[str], title: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>" + "\n".join(body) + "</body></html>"
    )


def _header(title: str, facts: list[str], links: dict[str, str] | None) -> list[str]:
    anchors = "".join(
        f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener">'
        f"{html.escape(name)}</a>"
        for name, url in (links or {}).items()
    )
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>{' · '.join([when, *map(html.escape, facts)])}</p>",
        *([f"<p class='meta'>{anchors}</p>"] if anchors else []),
    ]


def _verdict(good: bool, headline: str, items: list[str]) -> str:
    points = "".join(f"<li>{html.escape(i)}</li>" for i in items)
    return (
        f"<div class='verdict {'good' if good else 'bad'}'><b>{html.escape(headline)}</b>"
        + (f"<ul>{points}</ul>" if points else "")
        + "</div>"
    )


def _img(png: str) -> str:
    return f'<img src="data:image/png;base64,{png}"/>'


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


def _fmt_ci(value: float, lower: float, upper: float) -> str:
    return Estimate(value, lower, upper).fmt() if not np.isnan(value) else "n/a"


def segment_table(per_group: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Segments with each estimate and its interval in one readable cell."""
    if per_group.is_empty() or f"candidate_{metric}" not in per_group.columns:
        return per_group
    cells = {
        name: [_fmt_ci(*r) for r in per_group.select(name, f"{name}_lower", f"{name}_upper").rows()]
        for name in (f"candidate_{metric}", f"baseline_{metric}", "improvement")
    }
    return pl.DataFrame(
        {
            "segment": per_group["group"],
            "value": per_group["value"],
            "rows": per_group["rows"],
            f"candidate {metric} [CI]": cells[f"candidate_{metric}"],
            f"best baseline {metric} [CI]": cells[f"baseline_{metric}"],
            "improvement [CI]": cells["improvement"],
            "note": per_group["note"],
        }
    )


def _fairness_section(ev: Evaluation, figures: dict[str, str]) -> list[str]:
    fair = ev.fairness
    assert fair is not None
    over = fair.exceeded()
    if fair.bound is None:
        verdict = "No bound is set (fairness.max_disparity)."
    elif over.height == 0:
        verdict = f"Every disparity is within the bound {fair.bound}."
    else:
        enforced = "fails the gate" if fair.blocking else "is reported, not enforced (block: false)"
        verdict = f"{over.height} disparity(ies) exceed the bound {fair.bound}: this {enforced}."
    sampled = f" (resampled from a seeded sample of {fair.resampled_rows:,} rows)"
    return [
        "<h2>Fairness across groups</h2>",
        f"<p>At the decision threshold {ev.candidate.name} selects (labels positive) each "
        f"group's rows at the rates below, with {ev.confidence:.0%} bootstrap intervals"
        f"{sampled if fair.resampled_rows < ev.test_rows else ''}. Demographic-parity "
        "difference: the largest minus the smallest selection rate; equalized-odds difference: "
        f"the larger of the TPR and FPR ranges. {html.escape(verdict)}</p>",
        _table_html(fair.disparities),
        _table_html(fair.groups),
        *([_img(figures[plot_lib.FAIRNESS])] if plot_lib.FAIRNESS in figures else []),
    ]


def _gate_table(decision: GateDecision) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(c.name)}</td><td class='{'pass' if c.passed else 'fail'}'>"
        f"{'passed' if c.passed else 'FAILED'}</td><td>{html.escape(c.detail)}</td></tr>"
        for c in decision.criteria
    )
    return f"<table><tr><th>criterion</th><th>result</th><th>detail</th></tr>{rows}</table>"


def render_html(
    ev: Evaluation,
    decision: GateDecision,
    lineage: Lineage,
    links: dict[str, str] | None = None,
) -> str:
    """The whole report as one HTML document: no external resources, and links only to the
    runs in ``links`` (name -> URL, e.g. the MLflow and Dagster runs)."""
    figures = plot_lib.plots(ev)
    cand = ev.candidate
    headline = (
        f"PROMOTE: {cand.name} passes every criterion of the gate"
        if decision.promote
        else f"NOT PROMOTED: {cand.name} fails {len(decision.reasons)} criterion(s)"
    )
    sections = [
        *_header(
            f"Evaluation report: {ev.spec_name}",
            [f"candidate {cand.name}", f"{ev.test_rows:,} test rows", f"primary {ev.primary}"],
            links,
        ),
        _verdict(
            decision.promote,
            headline,
            [
                f"{ev.primary} {cand.metrics[ev.primary].fmt()}; improvement over the best "
                f"baseline '{ev.best_baseline}' {ev.vs_baseline.fmt()}",
                *decision.reasons,
            ],
        ),
        f"<p>Intervals are {ev.confidence:.0%} {_interval_kind(ev)}. "
        f"{html.escape(_sampling_note(ev))}</p>",
        "<h2>Metrics on the test split</h2>",
        _table_html(ev.summary_table()),
        "<h2>Candidate vs best baseline (paired test)</h2>",
        f"<p>Improvement in {ev.primary} over '{ev.best_baseline}': {ev.vs_baseline.fmt()}"
        " (positive = candidate better)</p>",
    ]
    if ev.vs_champion is not None:
        sections.append(f"<p>Improvement over the current champion: {ev.vs_champion.fmt()}</p>")
    sections += ["<h2>Promotion gate</h2>", _gate_table(decision)]
    if ev.selection is not None:
        folds = sum(c.startswith("fold_") for c in ev.selection.columns)
        sections += [
            "<h2>Model selection: cross-validation</h2>",
            f"<p>{ev.primary} on each of {folds} folds of the train + validation rows (folds "
            f"{html.escape(ev.selection_folds)}; each fold scored by a fit that never saw it), "
            "with the mean that chose the candidate and the standard deviation across folds. "
            "The test split took no part in the choice.</p>",
            _table_html(ev.selection),
        ]
    if ev.forecast is not None:
        dm = ev.forecast.dm
        sections.append(
            f"<p>Diebold-Mariano test on holdout {ev.primary} losses (Newey-West variance): "
            f"statistic {dm.statistic:.3f}, p-value {dm.p_value:.4g}.</p>"
        )
        sections += ["<h2>Backtest folds and holdout</h2>", _table_html(ev.per_group)]
        for name in (plot_lib.HOLDOUT, plot_lib.BACKTESTS, plot_lib.STEP_ERRORS):
            sections += [f"<h2>{name}</h2>", _img(figures[name])]
    if plot_lib.CURVES in figures:
        sections += [f"<h2>{plot_lib.CURVES}</h2>", _img(figures[plot_lib.CURVES])]
    if ev.fairness is not None:
        sections += _fairness_section(ev, figures)
    if ev.per_class is not None:
        many = ev.confusion is not None
        sections += [
            "<h2>Per class</h2>" if many else "<h2>Classes at the decision threshold</h2>",
            *(
                [
                    f"<p>{ev.candidate.name} labels each test row with its most probable class. "
                    "Precision, recall and F1 of each class against the rest; the confusion "
                    "matrix counts test rows by actual (rows) and predicted class.</p>"
                ]
                if many
                else []
            ),
            _table_html(ev.per_class),
            *([_table_html(ev.confusion)] if ev.confusion is not None else []),
            *([_img(figures[plot_lib.CONFUSION])] if plot_lib.CONFUSION in figures else []),
        ]
    if ev.forecast is None and not ev.per_group.is_empty():
        sections += [
            "<h2>Segments</h2>",
            f"<p>{ev.primary} per segment with its {ev.confidence:.0%} interval, and the paired "
            "improvement over the best baseline within the segment.</p>",
            _table_html(segment_table(ev.per_group, ev.primary)),
        ]
    if ev.calibration is not None:
        sections += [
            "<h2>Calibration</h2>",
            *(
                [
                    "<p>With more than two classes: the probability of each row's top class "
                    "against the share of rows whose top class is the true one, per bin.</p>"
                ]
                if ev.classes
                else []
            ),
            _img(figures[plot_lib.CALIBRATION]),
            _table_html(ev.calibration),
        ]
    if ev.residuals:
        sections += [
            "<h2>Residuals</h2>",
            _table_html(pl.DataFrame([ev.residuals])),
            _img(figures[plot_lib.RESIDUALS]),
            _img(figures[plot_lib.RESIDUAL_DISTRIBUTION]),
        ]
    if ev.importance is not None and plot_lib.IMPORTANCE in figures:
        sections += [
            "<h2>Feature importance</h2>",
            _img(figures[plot_lib.IMPORTANCE]),
            f"<details><summary>all {ev.importance.height} values</summary>"
            + _table_html(ev.importance)
            + "</details>",
        ]
    sections += [
        "<h2>Lineage</h2>",
        _table_html(pl.DataFrame([{"item": k, "value": str(v)} for k, v in vars(lineage).items()])),
    ]
    return _page(sections, f"{ev.spec_name}: evaluation report")


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
    prediction: PredictionDrift,
    metric: str,
    champion_test: Estimate | None = None,
    links: dict[str, str] | None = None,
    top: int = 6,
) -> str:
    """One day's drift page: the verdict, the realized metric beside the champion's test
    interval, the ranked table, and reference-vs-day distributions of the most drifted
    features and of the predictions."""
    realized = verdict.realized.fmt() if verdict.realized else "no labels yet"
    champion = champion_test.fmt() if champion_test else "not logged"
    body = [
        *_header(
            title, [f"{current.height:,} rows", f"reference {reference.height:,} rows"], links
        ),
        _verdict(
            not verdict.retrain,
            "Retraining recommended" if verdict.retrain else "No retraining needed",
            verdict.reasons or ["every threshold of the spec's monitoring section holds"],
        ),
        "<h2>Performance</h2>",
        _table_html(
            pl.DataFrame(
                {
                    "": [
                        f"realized {metric} on this day's labelled rows",
                        f"champion test {metric}",
                    ],
                    "value [CI]": [realized, champion],
                }
            )
        ),
        "<h2>Drift</h2>",
        f"<p>Prediction PSI {verdict.prediction_psi:.4f} (of {verdict.prediction_psi_of}); "
        f"drifted share "
        f"{verdict.drifted_share:.0%}; max PSI {verdict.max_psi:.4f}.</p>",
        _table_html(table),
        "<h2>Reference (champion's training sample) vs this day</h2>",
        _img(plot_lib.drift_figure(table, reference, current, prediction, top)),
    ]
    return _page(body, title)
