"""Our test metric for every built-in spec next to plain references on the same split.

Trains every built-in spec with the real job (``dagster job execute -j train_all`` on fresh
stores; churn on the first 14 days of its stream, as `make demo` does), then reads back each
spec's splits asset and fits, on the same train rows, what a user would otherwise write:

- tabular specs: LightGBM with fixed settings (300 trees, learning rate 0.03, 15 leaves,
  min_child_samples 50; binary or multiclass objective for classification, Poisson for a
  count target, L2 otherwise), string and declared categorical columns as pandas categories,
  fitted on the train rows and, as our final models are (split.refit), on train + validation
  rows;
- forecasting specs: statsmodels Holt-Winters (additive trend and season of the spec's period)
  and seasonal naive, each forecasting the holdout from the history before it.

Prints, per spec, the primary metric of our selected candidate (as logged on its MLflow run)
and of each reference on the test split, which is better, and for forecasts the
Diebold-Mariano p-value of ours against seasonal naive.

Run: .venv/bin/python bench/quality.py [--trained <home of an earlier run>]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
LIGHTGBM = {
    "n_estimators": 300,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 50,
    "random_state": 42,
    "n_jobs": 2,
    "verbose": -1,
}
LOWER_IS_BETTER = {"rmse", "mae", "mase", "log_loss", "brier", "poisson_deviance", "smape"}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def train_everything(home: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "ML_ASSETS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }
    env.pop("ML_ASSETS_SPECS", None)
    env.pop("ML_ASSETS_DATA_DIR", None)
    (home / "dagster_home").mkdir(parents=True)
    (home / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    python = sys.executable
    steps = [
        [python, "-m", "ml_assets.cli", "stream", "--days", "14", "--restart"],
        [str(Path(python).with_name("dagster")), "job", "execute", "-m", "ml_assets.definitions"]
        + ["-j", "train_all"],
    ]
    for cmd in steps:
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0 and "train_all" not in cmd:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return env


def ours(tracking_uri: str, spec: str, primary: str) -> dict[str, float]:
    """The selected candidate's test metrics, from its MLflow run."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(spec)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.gate_passed != ''",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    metrics = runs[0].data.metrics
    return {k: v for k, v in metrics.items() if k.startswith(("test_", "dm_"))} | {
        "model": runs[0].data.tags.get("model_name", "?")  # type: ignore[dict-item]
    }


def tabular_score(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    from sklearn import metrics as skm

    if metric == "roc_auc":
        return float(skm.roc_auc_score(y, p))
    if metric == "average_precision":
        return float(skm.average_precision_score(y, p))
    if metric == "log_loss":
        return float(skm.log_loss(y, p, labels=list(range(p.shape[1])) if p.ndim == 2 else None))
    if metric == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y, p)))
    if metric == "mae":
        return float(skm.mean_absolute_error(y, p))
    raise ValueError(f"no reference scorer for {metric}")


def tabular_reference(spec, splits: pl.DataFrame, fit_on: tuple[str, ...]) -> float:  # noqa: ANN001
    import lightgbm as lgb

    from ml_assets.lib import data as data_lib

    features = data_lib.feature_columns(spec, splits)
    frame = splits.select([*features, spec.target, data_lib.SPLIT]).to_pandas()
    for c in features:
        if not splits.schema[c].is_numeric() or c in spec.categorical:
            frame[c] = frame[c].astype("category")
    train = frame[frame[data_lib.SPLIT].isin(fit_on)]
    test = frame[frame[data_lib.SPLIT] == "test"]
    y = train[spec.target].to_numpy()
    labels = sorted(splits[spec.target].unique().to_list())
    if spec.task == "classification" and len(labels) > 2:  # multiclass objective, K columns
        model = lgb.LGBMClassifier(objective="multiclass", **LIGHTGBM)
        model.fit(train[features], np.searchsorted(labels, y))
        p = model.predict_proba(test[features])
        truth = np.searchsorted(labels, test[spec.target].to_numpy())
    elif spec.task == "classification":
        positive = data_lib.positive_class(splits[spec.target])
        model = lgb.LGBMClassifier(objective="binary", **LIGHTGBM)
        model.fit(train[features], (y == positive).astype(int))
        p = model.predict_proba(test[features])[:, 1]
        truth = (test[spec.target].to_numpy() == positive).astype(int)
    else:
        counts = bool(np.all(y >= 0) and np.all(np.equal(np.mod(y, 1), 0)))
        model = lgb.LGBMRegressor(objective="poisson" if counts else "regression", **LIGHTGBM)
        model.fit(train[features], y)
        p, truth = model.predict(test[features]), test[spec.target].to_numpy()
    return tabular_score(spec.primary_metric, truth, p)


def forecast_references(spec, splits: pl.DataFrame) -> dict[str, float]:  # noqa: ANN001
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    from ml_assets.lib import data as data_lib

    assert spec.forecast is not None and spec.primary_metric == "mase"
    ordered = splits.sort(spec.time_column)
    y = ordered.filter(pl.col(data_lib.SPLIT) != "test")[spec.target].cast(pl.Float64).to_numpy()
    test = ordered.filter(pl.col(data_lib.SPLIT) == "test")[spec.target].to_numpy()
    m = spec.forecast.seasonal_period
    scale = float(np.mean(np.abs(y[m:] - y[:-m])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hw = ExponentialSmoothing(y, trend="add", seasonal="add", seasonal_periods=m).fit()
    forecasts = {
        "holt_winters": np.asarray(hw.forecast(len(test))),
        "seasonal_naive": np.resize(y[-m:], len(test)),
    }
    return {k: float(np.mean(np.abs(test - f)) / scale) for k, f in forecasts.items()}


def main() -> int:
    from ml_assets.lib.spec import discover_specs

    parser = argparse.ArgumentParser()
    parser.add_argument("--trained", help="a home trained by an earlier run: skip training")
    args = parser.parse_args()
    if args.trained:
        home = Path(args.trained)
        env = {"MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}
    else:
        home = Path(tempfile.mkdtemp(prefix="ml_assets_quality_"))
        env = train_everything(home)
    say(f"every built-in spec trained by train_all in {home} (cores={os.cpu_count()})\n")
    say("| spec | metric | ours (selected candidate) | reference | reference value | ours better |")
    say("|---|---|---|---|---|---|")
    worse = 0
    for spec in discover_specs():
        primary = spec.primary_metric
        path = home / "data" / spec.name / "splits.parquet"
        if not path.exists():
            say(f"| {spec.name} | {primary} | NOT TRAINED (no splits asset) | | | |")
            worse += 1
            continue
        splits = pl.read_parquet(path)
        mine = ours(env["MLFLOW_TRACKING_URI"], spec.name, primary)
        value = mine[f"test_{primary}"]
        refs = (
            forecast_references(spec, splits)
            if spec.forecast is not None
            else {
                "lightgbm_fixed (train)": tabular_reference(spec, splits, ("train",)),
                "lightgbm_fixed (train+validation)": tabular_reference(
                    spec, splits, ("train", "validation")
                ),
            }
        )
        for name, ref in refs.items():
            better = value <= ref if primary in LOWER_IS_BETTER else value >= ref
            worse += not better
            say(
                f"| {spec.name} | {primary} | {value:.4f} ({mine['model']}) | {name} | "
                f"{ref:.4f} | {'yes' if better else 'NO'} |"
            )
        if "dm_p_value_vs_seasonal_naive" in mine:
            say(
                f"| {spec.name} | Diebold-Mariano vs seasonal naive | p = "
                f"{mine['dm_p_value_vs_seasonal_naive']:.2e} "
                f"(statistic {mine['dm_statistic_vs_seasonal_naive']:.2f}) | | | |"
            )
    say(f"\nspecs x references where ours is worse: {worse}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
