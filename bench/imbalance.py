"""Class weighting and the threshold choice on rare events, scored on the validation split.

Generates seeded rare-event tables (``ml_assets.lib.rare_events``: 2% positives) and, for
each, trains our GLM and LightGBM candidates with ``class_weight: none`` and ``balanced``
(and ``auto``, which trains both and keeps the better validation score), selection on the
validation split alone (``cv_folds: 0``), once for a spec whose metric is F1 and once for one
whose metric is balanced accuracy. Prints, per spec metric, family and weighting, that metric
on validation at the fixed threshold 0.5 and at the threshold chosen on validation for it,
average precision, and recall at precision 0.30; then, per family, how balanced weights
changed the spec's metric at the chosen threshold (median over seeds of the paired
difference, and in how many seeds it rose), and what auto chose.

Run: .venv/bin/python bench/imbalance.py [--rows 20000] [--seeds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np
import polars as pl

from ml_assets.lib.data import SPLIT, build_features
from ml_assets.lib.families import train_tabular
from ml_assets.lib.metrics import get_metric, score
from ml_assets.lib.models import Model, TrainingData, prepare
from ml_assets.lib.rare_events import SHAPES, rare_events
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.splits import assign_splits

RANKING = ("average_precision", "recall_at_precision_30")
METRICS = ("f1", "balanced_accuracy")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def spec_for(weighting: str, metric: str) -> MLSpec:
    return MLSpec.model_validate(
        {
            "name": "rare_events",
            "task": "classification",
            "source": {"path": "rare_events.csv"},
            "target": "y",
            "class_weight": weighting,
            "metrics": {"primary": metric, "secondary": list(RANKING)},
            "split": {"strategy": "stratified", "cv_folds": 0},
            "candidates": {"glm": {}, "lightgbm": {"budget": 10}},
            "validation": {"min_rows": 50},
        }
    )


def data_for(spec: MLSpec, raw: pl.DataFrame) -> TrainingData:
    splits = assign_splits(spec, build_features(spec, raw))
    part = {s: splits.filter(pl.col(SPLIT) == s) for s in ("train", "validation")}
    return prepare(spec, part["train"], part["validation"])


def figures(model: Model, data: TrainingData, metric: str) -> dict[str, float]:
    scores = model.predict(data.validation) if model.validation_scores is None else None
    scores = model.validation_scores if scores is None else scores
    y, label_metric = data.y_validation, get_metric(metric)
    out = {
        "at_0.5": score(label_metric, y, (scores >= 0.5).astype(np.int8)),
        "at_chosen": score(label_metric, y, model.labels(scores)),
    }
    return out | {name: score(get_metric(name), y, scores) for name in RANKING}


Results = dict[tuple[str, str, str], list[dict[str, float]]]


def run(rows: int, seeds: int, shape: str) -> tuple[Results, dict[tuple[str, str], list[str]]]:
    """Every (spec metric, family, weighting)'s figures per seed, and auto's choices."""
    results: Results = {}
    chosen: dict[tuple[str, str], list[str]] = {}
    for seed in range(1, seeds + 1):
        raw = rare_events(rows, 0.02, seed, shape)
        for metric in METRICS:
            for weighting in ("none", "balanced", "auto"):
                spec = spec_for(weighting, metric)
                data = data_for(spec, raw)
                for family in spec.families:
                    model = train_tabular(spec, family, data, get_metric(metric))
                    if weighting == "auto":
                        picked = str(model.params["class_weight"])
                        chosen.setdefault((metric, family), []).append(picked)
                    else:
                        key = (metric, family, weighting)
                        results.setdefault(key, []).append(figures(model, data, metric))
    return results, chosen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    args = parser.parse_args()
    for shape in args.shapes:
        report(shape, args.rows, args.seeds)


def report(shape: str, rows: int, seeds: int) -> None:
    results, chosen = run(rows, seeds, shape)
    say(
        f"rare events, shape {shape}: {rows:,} rows, 2% positives, {seeds} seeds; validation "
        "split (20%), medians over seeds\n"
    )
    columns = ["at_0.5", "at_chosen", *RANKING]
    say("| spec metric | family | class_weight | " + " | ".join(columns) + " |")
    say("|---|---|---|" + "---|" * len(columns))
    for (metric, family, weighting), per_seed in results.items():
        values = [statistics.median(r[c] for r in per_seed) for c in columns]
        cells = " | ".join(f"{v:.4f}" for v in values)
        say(f"| {metric} | {family} | {weighting} | {cells} |")
    say("")
    for metric in METRICS:
        for family in ("glm", "lightgbm"):
            none = results[(metric, family, "none")]
            balanced = results[(metric, family, "balanced")]
            gains = [b["at_chosen"] - n["at_chosen"] for n, b in zip(none, balanced, strict=True)]
            rose = sum(g > 0 for g in gains)
            picks = chosen[(metric, family)]
            say(
                f"{metric}, {family}: balanced - none at the chosen threshold, median "
                f"{statistics.median(gains):+.4f}, higher in {rose} of {len(gains)} seeds; "
                f"auto kept balanced in {picks.count('balanced')} of {len(picks)}"
            )


if __name__ == "__main__":
    main()
