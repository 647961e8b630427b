"""Forecast evaluation: MASE/MAE/RMSE/sMAPE/MAPE per fold and on the holdout, interval
coverage and width, and a Diebold-Mariano test against the best baseline.

Intervals on holdout metrics and the paired test use a Newey-West (Bartlett kernel) variance
of the per-step losses, because errors of one forecast path are autocorrelated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from ml_assets.lib.evaluation import Evaluation, Scored
from ml_assets.lib.forecasters import Forecast, Forecaster, forecast_frame
from ml_assets.lib.metrics import Estimate
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.timeseries import mase_scale


def step_losses(metric: str, y: np.ndarray, yhat: np.ndarray, scale: float) -> np.ndarray:
    """Per-step losses whose mean is the metric (RMSE: square root of the mean)."""
    e = y - yhat
    if metric == "mae":
        return np.abs(e)
    if metric == "rmse":
        return e**2
    if metric == "mase":
        return np.abs(e) / scale
    if metric == "smape":
        denominator = np.abs(y) + np.abs(yhat)
        safe = np.where(denominator > 0, denominator, 1.0)  # both zero: no error, loss 0
        return 200 * np.abs(e) / safe
    if metric == "mape":
        return 100 * np.abs(e) / np.maximum(np.abs(y), np.finfo(float).eps)
    raise KeyError(f"no forecasting loss for metric '{metric}'")


def newey_west_se(x: np.ndarray) -> float:
    """Standard error of mean(x) with a Bartlett-kernel HAC variance, automatic bandwidth."""
    n = len(x)
    d = x - x.mean()
    lags = min(n - 1, int(np.floor(4 * (n / 100) ** (2 / 9))))
    var = float(d @ d) / n
    for k in range(1, lags + 1):
        var += 2 * (1 - k / (lags + 1)) * float(d[k:] @ d[:-k]) / n
    return float(np.sqrt(max(var, 0.0) / n))


def _t(confidence: float, n: int) -> float:
    return float(stats.t.ppf((1 + confidence) / 2, max(n - 1, 1)))


def metric_estimate(
    metric: str, y: np.ndarray, yhat: np.ndarray, scale: float, confidence: float
) -> Estimate:
    losses = step_losses(metric, y, yhat, scale)
    mean, half = float(losses.mean()), _t(confidence, len(y)) * newey_west_se(losses)
    if metric == "rmse":
        return Estimate(np.sqrt(mean), np.sqrt(max(mean - half, 0.0)), np.sqrt(mean + half))
    return Estimate(mean, mean - half, mean + half)


@dataclass(frozen=True)
class DieboldMariano:
    """Improvement (reference loss minus new loss: positive = new better) with its test."""

    improvement: Estimate
    statistic: float
    p_value: float


def diebold_mariano(
    loss_new: np.ndarray, loss_ref: np.ndarray, confidence: float
) -> DieboldMariano:
    d = loss_ref - loss_new
    se = newey_west_se(d)
    mean, n = float(d.mean()), len(d)
    stat = mean / se if se > 0 else (np.inf if mean > 0 else 0.0)
    p = float(2 * stats.t.sf(abs(stat), max(n - 1, 1)))
    half = _t(confidence, n) * se
    return DieboldMariano(Estimate(mean, mean - half, mean + half), float(stat), p)


def fold_metrics(backtests: pl.DataFrame, metrics: list[str]) -> pl.DataFrame:
    """One row per model and fold (holdout rows have fold = 'holdout')."""
    rows = []
    for (model, fold), part in backtests.group_by(["model", "fold"], maintain_order=True):
        y, yhat, scale = part["actual"].to_numpy(), part["mean"].to_numpy(), part["scale"][0]
        row: dict[str, object] = {"model": model, "fold": str(fold)}
        for m in metrics:
            losses = step_losses(m, y, yhat, scale)
            row[m] = float(np.sqrt(losses.mean()) if m == "rmse" else losses.mean())
        row |= interval_stats(part)
        rows.append(row)
    return pl.DataFrame(rows)


def interval_stats(part: pl.DataFrame) -> dict[str, float | None]:
    """Share of actuals inside the interval and its mean width (None without intervals)."""
    if part["lower"].is_nan().all():
        return {"coverage": None, "mean_width": None}
    inside = (part["actual"] >= part["lower"]) & (part["actual"] <= part["upper"])
    return {
        "coverage": float(inside.mean()),
        "mean_width": float((part["upper"] - part["lower"]).mean()),
    }


def validation_metrics(backtests: pl.DataFrame, metrics: list[str]) -> dict[str, float]:
    """Mean over backtest folds of each metric: the forecasting analogue of validation."""
    table = fold_metrics(backtests, metrics)
    return {m: float(table[m].mean()) for m in metrics}


@dataclass(frozen=True)
class ForecastDetails:
    """What a forecasting report shows beyond the common evaluation."""

    holdout: pl.DataFrame
    backtests: pl.DataFrame
    history: pl.DataFrame
    per_fold: pl.DataFrame
    step_errors: pl.DataFrame
    dm: DieboldMariano
    vs_seasonal_naive: DieboldMariano | None = None


def _scored(spec: MLSpec, frame: pl.DataFrame, role: str) -> Scored:
    y, yhat, scale = frame["actual"].to_numpy(), frame["mean"].to_numpy(), frame["scale"][0]
    metrics = {
        m: metric_estimate(m, y, yhat, scale, spec.evaluation.confidence) for m in spec.all_metrics
    }
    return Scored(frame["model"][0], role, role, yhat, None, metrics)  # type: ignore[arg-type]


def holdout_frame(model: Forecaster, history: pl.DataFrame, holdout: pl.DataFrame) -> pl.DataFrame:
    """``model`` (fitted on ``history``) forecasting the holdout, as a long frame."""
    fc: Forecast = model.forecast(holdout.height, holdout.drop(model.target))
    scale = mase_scale(history[model.target].cast(pl.Float64).to_numpy(), model.seasonal_period)
    return forecast_frame(model, holdout, fc, fold=-1, scale=scale)


def evaluate_forecast(
    spec: MLSpec,
    history: pl.DataFrame,
    holdout: pl.DataFrame,
    candidate: tuple[Forecaster, pl.DataFrame],
    baselines: list[tuple[Forecaster, pl.DataFrame]],
    best_baseline: str,
    champion: Forecaster | None = None,
) -> Evaluation:
    """Holdout evaluation of fitted forecasters (candidate, baselines, refit champion)."""
    from ml_assets.lib.data import fingerprint

    cand_model, cand_backtest = candidate
    frames = {m.name: holdout_frame(m, history, holdout) for m, _ in [candidate, *baselines]}
    cand = _scored(spec, frames[cand_model.name], "candidate")
    bases = [_scored(spec, frames[m.name], "baseline") for m, _ in baselines]
    primary = spec.primary_metric
    y, scale = frames[cand_model.name]["actual"].to_numpy(), frames[cand_model.name]["scale"][0]

    def losses(name: str) -> np.ndarray:
        return step_losses(primary, y, frames[name]["mean"].to_numpy(), scale)

    dm = diebold_mariano(losses(cand_model.name), losses(best_baseline), spec.evaluation.confidence)
    champ, vs_champ = None, None
    if champion is not None:
        frames[champion.name] = holdout_frame(champion, history, holdout)
        champ = _scored(spec, frames[champion.name], "champion")
        vs_champ = diebold_mariano(
            losses(cand_model.name), losses(champion.name), spec.evaluation.confidence
        ).improvement
    backtests = pl.concat([cand_backtest, *[b for _, b in baselines]])
    holdouts = pl.concat(list(frames.values()))
    per_fold = fold_metrics(pl.concat([backtests, holdouts]), spec.all_metrics).with_columns(
        pl.col("fold").replace({"-1": "holdout"})
    )
    step_errors = (
        pl.concat([backtests, holdouts])
        .with_columns(((pl.col("actual") - pl.col("mean")).abs()).alias("abs_error"))
        .group_by(["model", "step"])
        .agg(pl.col("abs_error").mean())
        .sort(["model", "step"])
    )
    plotted = history.select(
        pl.col(cand_model.time_column).alias("time"), pl.col(cand_model.target).alias("actual")
    )
    seasonal = next((m.name for m, _ in baselines if m.family == "seasonal_naive"), None)
    vs_seasonal = (
        diebold_mariano(losses(cand_model.name), losses(seasonal), spec.evaluation.confidence)
        if seasonal
        else None
    )
    details = ForecastDetails(holdouts, backtests, plotted, per_fold, step_errors, dm, vs_seasonal)
    return Evaluation(
        spec.name,
        "forecasting",
        primary,
        holdout.height,
        fingerprint(holdout),
        y,
        cand,
        bases,
        best_baseline,
        dm.improvement,
        champ,
        vs_champ,
        per_group=per_fold,
        importance=None,
        confidence=spec.evaluation.confidence,
        forecast=details,
    )
