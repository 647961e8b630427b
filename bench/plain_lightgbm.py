"""What a user would write by hand instead of the pipeline: read the parquet file, split it
60/20/20 at random, train LightGBM with early stopping on validation, report test ROC AUC.

Run: .venv/bin/python bench/plain_lightgbm.py DATA.parquet [--rounds 300] [--seed 42]
Prints one JSON line: rows, seconds per step, best iteration, test AUC.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--target", default="label")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    times: dict[str, float] = {}
    start = time.perf_counter()

    frame = pl.read_parquet(args.data)
    strings = [c for c, t in frame.schema.items() if t == pl.String]
    x = frame.drop(args.target).with_columns(
        pl.col(strings).cast(pl.Categorical).to_physical().cast(pl.Float64)
    )
    features = x.columns
    x_all = x.to_numpy()
    y_all = frame[args.target].to_numpy()
    times["read"] = time.perf_counter() - start

    order = np.random.default_rng(args.seed).permutation(frame.height)
    n_train, n_val = int(0.6 * frame.height), int(0.2 * frame.height)
    parts = np.split(order, [n_train, n_train + n_val])
    (x_tr, x_va, x_te), (y_tr, y_va, y_te) = ([x_all[p] for p in parts], [y_all[p] for p in parts])
    times["split"] = time.perf_counter() - start - sum(times.values())

    cats = [features.index(c) for c in strings]
    train_set = lgb.Dataset(x_tr, y_tr, categorical_feature=cats)
    valid_set = lgb.Dataset(x_va, y_va, reference=train_set)
    booster = lgb.train(
        {"objective": "binary", "seed": args.seed, "verbosity": -1},
        train_set,
        args.rounds,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    times["train"] = time.perf_counter() - start - sum(times.values())

    auc = roc_auc_score(y_te, booster.predict(x_te, num_iteration=booster.best_iteration))
    times["test_auc"] = time.perf_counter() - start - sum(times.values())
    out = {
        "rows": frame.height,
        "seconds": times,
        "best_iteration": booster.best_iteration,
        "test_roc_auc": float(auc),
    }
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
