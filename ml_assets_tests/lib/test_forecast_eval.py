"""Forecast evaluation: the MASE scale, per-step losses, Newey-West, Diebold-Mariano, per-fold
metrics and interval statistics, and the full holdout evaluation with its gate criteria."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl
import pytest

from ml_assets.lib import families
from ml_assets.lib import forecast_eval as fe
from ml_assets.lib import forecasters as fc
from ml_assets.lib.data import SPLIT
from ml_assets.lib.evaluation import Evaluation
from ml_assets.lib.gate import decide
from ml_assets.lib.timeseries import assign_forecast_splits, backtest_folds
from ml_assets_tests.lib.conftest import forecast_spec

START = dt.datetime(2021, 1, 2)


# --- scale, losses, estimates -------------------------------------------------------------------


def test_mase_scale_is_the_mean_absolute_seasonal_difference() -> None:
    y = np.array([1.0, 4.0, 2.0, 8.0, 3.0, 9.0])
    assert fe.mase_scale(y, 2) == pytest.approx(np.mean([1.0, 4.0, 1.0, 1.0]))  # 1.75
    assert fe.mase_scale(y, 1) == pytest.approx(np.mean([3.0, 2.0, 6.0, 5.0, 6.0]))  # 4.4
    # shorter than a season: the naive (lag 1) scale
    assert fe.mase_scale(np.array([1.0, 3.0, 7.0]), 4) == pytest.approx(3.0)
    # a constant series has no scale: 1, never a division by zero
    assert fe.mase_scale(np.full(10, 5.0), 2) == 1.0


Y = np.array([1.0, 2.0, 4.0, 0.0])
YHAT = np.array([2.0, 2.0, 1.0, 0.0])  # errors -1, 0, 3, 0


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("mae", [1.0, 0.0, 3.0, 0.0]),
        ("rmse", [1.0, 0.0, 9.0, 0.0]),
        ("mase", [0.5, 0.0, 1.5, 0.0]),
        ("smape", [200 / 3, 0.0, 120.0, 0.0]),
        ("mape", [100.0, 0.0, 75.0, 0.0]),
    ],
)
def test_step_losses_by_hand(metric: str, expected: list[float]) -> None:
    np.testing.assert_allclose(fe.step_losses(metric, Y, YHAT, 2.0), expected)


def test_step_losses_unknown_metric() -> None:
    with pytest.raises(KeyError, match="no forecasting loss for metric 'roc_auc'"):
        fe.step_losses("roc_auc", Y, YHAT, 1.0)


def test_mape_of_a_zero_actual_is_huge_not_infinite() -> None:
    losses = fe.step_losses("mape", np.array([0.0]), np.array([1.0]), 1.0)
    assert np.isfinite(losses[0]) and losses[0] > 1e10


@pytest.mark.parametrize("metric", ["mae", "rmse", "mase", "smape", "mape"])
def test_metric_estimate_interval_contains_the_value(metric: str) -> None:
    rng = np.random.default_rng(5)
    y = 50 + rng.normal(0, 5, 40)
    yhat = y + rng.normal(0, 2, 40)
    est = fe.metric_estimate(metric, y, yhat, 1.5, 0.95)
    losses = fe.step_losses(metric, y, yhat, 1.5)
    point = np.sqrt(losses.mean()) if metric == "rmse" else losses.mean()
    assert est.value == pytest.approx(point)
    assert est.lower < est.value < est.upper


def test_rmse_estimate_is_the_root_of_the_squared_error_interval() -> None:
    y, yhat = np.array([0.0, 0.0, 0.0, 0.0]), np.array([1.0, -3.0, 1.0, 3.0])
    est = fe.metric_estimate("rmse", y, yhat, 1.0, 0.95)
    assert est.value == pytest.approx(np.sqrt(5.0))
    mae = fe.metric_estimate("mae", y, yhat, 1.0, 0.95)
    assert mae.value == pytest.approx(2.0)


# --- Newey-West and Diebold-Mariano ------------------------------------------------------------


def test_newey_west_se_by_hand() -> None:
    # n = 4: one lag; var = 1.25 + 2 * (1/2) * 1.25 / 4 = 1.5625; se = sqrt(1.5625 / 4)
    assert fe.newey_west_se(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.625)


def test_newey_west_se_is_the_plain_se_for_white_noise() -> None:
    x = np.random.default_rng(11).normal(size=2000)
    plain = x.std() / np.sqrt(len(x))
    assert fe.newey_west_se(x) == pytest.approx(plain, rel=0.1)


def test_newey_west_se_is_larger_for_an_autocorrelated_series() -> None:
    rng = np.random.default_rng(12)
    e = rng.normal(size=2000)
    x = np.zeros(2000)
    for i in range(1, 2000):
        x[i] = 0.9 * x[i - 1] + e[i]
    plain = x.std() / np.sqrt(len(x))
    assert fe.newey_west_se(x) > 2 * plain


def test_diebold_mariano_clearly_better_forecast() -> None:
    rng = np.random.default_rng(7)
    y = rng.normal(size=60)
    good = y + rng.normal(0, 0.2, 60)
    bad = y + rng.normal(0, 2.0, 60)
    dm = fe.diebold_mariano(np.abs(y - good), np.abs(y - bad), 0.95)
    assert dm.improvement.value == pytest.approx(np.mean(np.abs(y - bad) - np.abs(y - good)))
    assert dm.improvement.value > 0
    assert dm.improvement.lower > 0
    assert dm.statistic > 3
    assert dm.p_value < 0.01
    # swapping the roles flips the sign
    worse = fe.diebold_mariano(np.abs(y - bad), np.abs(y - good), 0.95)
    assert worse.improvement.value == pytest.approx(-dm.improvement.value)
    assert worse.improvement.upper < 0


def test_diebold_mariano_identical_forecasts() -> None:
    losses = np.abs(np.random.default_rng(8).normal(size=30))
    dm = fe.diebold_mariano(losses, losses.copy(), 0.95)
    assert (dm.improvement.value, dm.improvement.lower, dm.improvement.upper) == (0.0, 0.0, 0.0)
    assert dm.statistic == 0.0
    assert dm.p_value == pytest.approx(1.0)


# --- per-fold metrics and intervals ------------------------------------------------------------


def _hand_frame() -> pl.DataFrame:
    nan = float("nan")
    return pl.DataFrame(
        {
            "model": ["a"] * 4 + ["b"] * 4 + ["a"] * 2,
            "fold": [0] * 4 + [0] * 4 + [-1] * 2,
            "step": [1, 2, 3, 4] * 2 + [1, 2],
            "actual": [1.0, 2.0, 3.0, 4.0] * 2 + [10.0, 10.0],
            "mean": [1.0, 2.0, 3.0, 5.0] + [2.0, 3.0, 4.0, 5.0] + [8.0, 14.0],
            "lower": [0.0, 1.0, 2.5, 4.5] + [nan] * 4 + [7.0, 9.0],
            "upper": [2.0, 3.0, 3.5, 4.9] + [nan] * 4 + [9.0, 15.0],
            "scale": [0.5] * 8 + [2.0] * 2,
        }
    )


def test_interval_stats_coverage_and_width() -> None:
    frame = _hand_frame()
    a = frame.filter((pl.col("model") == "a") & (pl.col("fold") == 0))
    stats = fe.interval_stats(a)
    assert stats["coverage"] == pytest.approx(0.75)  # 4 is below the last interval [4.5, 4.9]
    assert stats["mean_width"] == pytest.approx((2 + 2 + 1 + 0.4) / 4)
    b = frame.filter(pl.col("model") == "b")
    assert fe.interval_stats(b) == {"coverage": None, "mean_width": None}


def test_fold_metrics_on_a_hand_made_frame() -> None:
    table = fe.fold_metrics(_hand_frame(), ["mase", "mae", "rmse"])
    assert table.columns == ["model", "fold", "mase", "mae", "rmse", "coverage", "mean_width"]
    rows = {(r["model"], r["fold"]): r for r in table.iter_rows(named=True)}
    assert set(rows) == {("a", "0"), ("b", "0"), ("a", "-1")}
    a0, b0, hold = rows[("a", "0")], rows[("b", "0")], rows[("a", "-1")]
    assert (a0["mae"], a0["rmse"], a0["mase"]) == pytest.approx((0.25, 0.5, 0.5))
    assert (a0["coverage"], a0["mean_width"]) == pytest.approx((0.75, 1.35))
    assert (b0["mae"], b0["rmse"], b0["mase"]) == pytest.approx((1.0, 1.0, 2.0))
    assert b0["coverage"] is None and b0["mean_width"] is None
    # holdout: errors 2 and 4, scale 2
    assert (hold["mae"], hold["rmse"], hold["mase"]) == pytest.approx((3.0, np.sqrt(10), 1.5))
    assert (hold["coverage"], hold["mean_width"]) == pytest.approx((0.5, 4.0))


def test_validation_metrics_average_the_folds() -> None:
    frame = _hand_frame().filter(pl.col("model") == "a")
    assert fe.validation_metrics(frame, ["mae"]) == {"mae": pytest.approx((0.25 + 3.0) / 2)}


# --- full holdout evaluation --------------------------------------------------------------------


def _series(n: int = 96, seed: int = 4) -> pl.DataFrame:
    t = pl.datetime_range(START, START + dt.timedelta(weeks=n - 1), interval="1w", eager=True)
    k = np.arange(n)
    rng = np.random.default_rng(seed)
    y = 100 + 0.5 * k + 10 * np.sin(2 * np.pi * k / 8) + rng.normal(0, 1, n)
    return pl.DataFrame({"date": t, "y": y})


@pytest.fixture(scope="module")
def fitted_setup() -> dict[str, Any]:
    spec = forecast_spec(
        candidates={"ets": {}},
        metrics={"primary": "mase", "secondary": ["mae", "rmse", "smape"]},
    )
    splits = assign_forecast_splits(spec, _series())
    history = splits.filter(pl.col(SPLIT) == "train").drop(SPLIT)
    holdout = splits.filter(pl.col(SPLIT) == "test").drop(SPLIT)
    folds = backtest_folds(spec, history.height)
    models = [families.forecaster(spec, "ets"), *fc.baselines(spec)]
    fitted = {m.name: (m.fit(history), fc.backtest(m, history, folds)) for m in models}
    return {"spec": spec, "history": history, "holdout": holdout, "fitted": fitted}


def _evaluate(setup: dict[str, Any], best: str, champion: Any = None) -> Evaluation:
    fitted = setup["fitted"]
    return fe.evaluate_forecast(
        setup["spec"],
        setup["history"],
        setup["holdout"],
        fitted["ets"],
        [fitted[n] for n in ("naive", "seasonal_naive", "drift", "mean")],
        best,
        champion,
    )


def test_evaluate_forecast_returns_forecast_details(fitted_setup: dict[str, Any]) -> None:
    ev = _evaluate(fitted_setup, "naive")
    spec, history, holdout = fitted_setup["spec"], fitted_setup["history"], fitted_setup["holdout"]
    assert (ev.task, ev.primary, ev.test_rows, ev.best_baseline) == (
        "forecasting",
        "mase",
        8,
        "naive",
    )
    assert ev.candidate.name == "ets"
    assert [b.name for b in ev.baselines] == ["naive", "seasonal_naive", "drift", "mean"]
    assert set(ev.candidate.metrics) == {"mase", "mae", "rmse", "smape"}
    np.testing.assert_array_equal(ev.y_true, holdout["y"].to_numpy())

    # MASE on the holdout against the in-sample seasonal naive scale of the history
    ets = fitted_setup["fitted"]["ets"][0]
    mean = ets.forecast(8, holdout).mean
    scale = fe.mase_scale(history["y"].to_numpy(), 8)
    expected_mase = np.mean(np.abs(holdout["y"].to_numpy() - mean)) / scale
    assert ev.candidate.metrics["mase"].value == pytest.approx(expected_mase)
    assert ev.candidate.metrics["mase"].value < ev.baseline.metrics["mase"].value

    details = ev.forecast
    assert isinstance(details, fe.ForecastDetails)
    assert details.history.columns == ["time", "actual"] and details.history.height == 88
    assert details.holdout["fold"].unique().to_list() == [-1]
    assert details.holdout.height == 5 * 8
    assert details.backtests.height == 5 * 2 * 8

    per_fold = details.per_fold
    assert per_fold.height == 5 * 3
    for name in ("ets", "naive", "seasonal_naive", "drift", "mean"):
        folds = per_fold.filter(pl.col("model") == name)["fold"].to_list()
        assert sorted(folds) == ["0", "1", "holdout"]
    cand_holdout = per_fold.filter((pl.col("model") == "ets") & (pl.col("fold") == "holdout"))
    assert cand_holdout["mase"][0] == pytest.approx(expected_mase)

    steps = details.step_errors
    assert steps.columns == ["model", "step", "abs_error"]
    assert steps.height == 5 * 8
    assert sorted(steps["model"].unique().to_list()) == sorted(
        ["ets", "naive", "seasonal_naive", "drift", "mean"]
    )
    both = pl.concat([details.backtests, details.holdout])
    step1 = both.filter((pl.col("model") == "ets") & (pl.col("step") == 1))
    assert step1.height == 3  # two folds and the holdout
    expected_step1 = float((step1["actual"] - step1["mean"]).abs().mean())
    got = steps.filter((pl.col("model") == "ets") & (pl.col("step") == 1))["abs_error"][0]
    assert got == pytest.approx(expected_step1)

    # the paired tests use the primary metric's holdout losses
    y = holdout["y"].to_numpy()
    seasonal = fitted_setup["fitted"]["seasonal_naive"][0].forecast(8, holdout).mean
    naive = fitted_setup["fitted"]["naive"][0].forecast(8, holdout).mean
    loss = fe.step_losses("mase", y, mean, scale)
    vs_naive = fe.diebold_mariano(loss, fe.step_losses("mase", y, naive, scale), 0.95)
    vs_seasonal = fe.diebold_mariano(loss, fe.step_losses("mase", y, seasonal, scale), 0.95)
    assert ev.vs_baseline.value == pytest.approx(vs_naive.improvement.value)
    assert details.dm.p_value == pytest.approx(vs_naive.p_value)
    assert details.vs_seasonal_naive is not None
    assert details.vs_seasonal_naive.improvement.value == pytest.approx(
        vs_seasonal.improvement.value
    )
    assert details.vs_seasonal_naive.improvement.lower > 0  # the trend defeats seasonal naive
    assert ev.champion is None and ev.vs_champion is None
    assert spec.evaluation.confidence == ev.confidence


def test_gate_adds_beats_seasonal_naive_when_the_best_baseline_is_another(
    fitted_setup: dict[str, Any],
) -> None:
    criteria = fitted_setup["spec"].success_criteria
    decision = decide(_evaluate(fitted_setup, "naive"), criteria)
    names = [c.name for c in decision.criteria]
    assert names == ["min_relative_improvement", "beats_baseline", "beats_seasonal_naive"]
    seasonal = decision.criteria[-1]
    assert seasonal.passed is True
    assert "over seasonal naive" in seasonal.detail and "Diebold-Mariano" in seasonal.detail

    own = decide(_evaluate(fitted_setup, "seasonal_naive"), criteria)
    assert [c.name for c in own.criteria] == ["min_relative_improvement", "beats_baseline"]


def test_evaluate_forecast_with_a_champion(fitted_setup: dict[str, Any]) -> None:
    import dataclasses

    champion = dataclasses.replace(fitted_setup["fitted"]["drift"][0], name="champion_v1")
    ev = _evaluate(fitted_setup, "naive", champion)
    assert ev.champion is not None and ev.champion.name == "champion_v1"
    assert ev.vs_champion is not None
    cand, champ = ev.candidate.metrics["mase"].value, ev.champion.metrics["mase"].value
    assert ev.vs_champion.value == pytest.approx(champ - cand)
    assert "champion_v1" in ev.forecast.holdout["model"].to_list()
    names = [c.name for c in decide(ev, fitted_setup["spec"].success_criteria).criteria]
    assert "not_worse_than_champion" in names
