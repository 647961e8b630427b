"""Scoring throughput: our LightGBM model wrapper (polars in, preprocessing included) and the
MLflow pyfunc around it, against raw ``Booster.predict`` on the same, already encoded rows.

Run: .venv/bin/python bench/scoring.py [--rows 200000] [--repeats 7]
Prints median seconds and rows per second for each path, and the ratio to the raw booster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import polars as pl

from ml_assets.lib.churn import ChurnStream
from ml_assets.lib.lightgbm_search import train_lightgbm
from ml_assets.lib.metrics import get_metric
from ml_assets.lib.models import prepare
from ml_assets.lib.spec import LightGBMCandidate, MLSpec


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    spec = MLSpec.model_validate(
        {
            "name": "churn_bench",
            "task": "classification",
            "source": {"statsmodels": "fair"},
            "target": "churned",
            "drop": ["customer_id", "snapshot_date"],
            "candidates": {"lightgbm": {"budget": 3}},
        }
    )
    stream = ChurnStream(customers_per_day=2000)
    history = pl.concat([stream.generate(d) for d in range(10)]).drop(spec.drop)
    data = prepare(spec, history.head(16_000), history.tail(4_000))
    model = train_lightgbm(data, LightGBMCandidate(budget=3), get_metric("roc_auc"))
    rows = pl.concat([stream.generate(100 + d) for d in range(args.rows // 2000 + 1)])
    rows = rows.drop(spec.drop).head(args.rows)
    encoded = model.prep.codes(rows)

    import mlflow

    from ml_assets.lib.tracking import PyfuncModel

    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(f"{tmp}/m", python_model=PyfuncModel(model))
        pyfunc = mlflow.pyfunc.load_model(f"{tmp}/m")
        as_pandas = rows.select(model.features).to_pandas()
        paths = {
            "Booster.predict (encoded numpy)": lambda: model.booster.predict(encoded),
            "LightGBMModel.predict (polars)": lambda: model.predict(rows),
            "MLflow pyfunc predict (pandas)": lambda: pyfunc.predict(as_pandas),
        }
        results = {name: _median_seconds(fn, args.repeats) for name, fn in paths.items()}
    base = results["Booster.predict (encoded numpy)"]
    out = sys.stdout
    out.write(
        f"rows={len(rows)} features={len(model.features)} repeats={args.repeats} "
        f"trees={model.booster.num_trees()}\n"
    )
    for name, seconds in results.items():
        out.write(
            f"{name:34s} median {seconds * 1000:8.1f} ms  {len(rows) / seconds:12,.0f} rows/s"
            f"  x{seconds / base:5.2f} of raw\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
