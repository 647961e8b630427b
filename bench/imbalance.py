"""Class weighting and the threshold choice on rare events, scored on the validation split.

Generates seeded rare-event tables (``ml_assets.lib.rare_events``: 2% positives) and, for
each, trains our GLM and LightGBM candidates with ``class_weight: none`` and ``balanced``
(and ``auto``, which trains both and keeps the better validation score), selection on the
validation split alone (``cv_folds: 0``). Prints, per family and weighting, the validation F1
at the fixed threshold 0.5 and at the threshold chosen on validation (``metrics.threshold_for:
f1``), average precision, and recall at precision 0.30; then what auto chose.

Run: .venv/bin/python bench/imbalance.py [--rows 20000] [--seeds 3]
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
from ml_assets.lib.rare_events import rare_events
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.splits import assign_splits

RANKING = ("average_precision", "recall_at_precision_30")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def spec_for(weighting: str) -> MLSpec:
    return MLSpec.model_validate(
        {
            "name": "rare_events",
            "task": "classification",
            "source": {"path": "rare_events.csv"},
            "target": "y",
            "class_weight": weighting,
            "metrics": {"primary": "f1", "secondary": list(RANKING)},
            "split": {"strategy": "stratified", "cv_folds": 0},
            "candidates": {"glm": {}, "lightgbm": {"budget": 10}},
            "validation": {"min_rows": 50},
        }
    )


def data_for(spec: MLSpec, raw: pl.DataFrame) -> TrainingData:
    splits = assign_splits(spec, build_features(spec, raw))
    part = {s: splits.filter(pl.col(SPLIT) == s) for s in ("train", "validation")}
    return prepare(spec, part["train"], part["validation"])


def figures(model: Model, data: TrainingData) -> dict[str, float]:
    scores = model.predict(data.validation) if model.validation_scores is None else None
    scores = model.validation_scores if scores is None else scores
    y, f1 = data.y_validation, get_metric("f1")
    out = {
        "f1_at_0.5": score(f1, y, (scores >= 0.5).astype(np.int8)),
        "f1_at_chosen": score(f1, y, model.labels(scores)),
    }
    return out | {name: score(get_metric(name), y, scores) for name in RANKING}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    chosen: dict[str, list[str]] = {}
    for seed in range(1, args.seeds + 1):
        raw = rare_events(args.rows, 0.02, seed)
        for weighting in ("none", "balanced", "auto"):
            spec = spec_for(weighting)
            data = data_for(spec, raw)
            for family in spec.families:
                model = train_tabular(spec, family, data, get_metric(spec.primary_metric))
                if weighting == "auto":
                    chosen.setdefault(family, []).append(str(model.params["class_weight"]))
                else:
                    results.setdefault((family, weighting), []).append(figures(model, data))
    say(
        f"rare events: {args.rows:,} rows, 2% positives, {args.seeds} seeds; validation split "
        "(20%), medians over seeds\n"
    )
    columns = ["f1_at_0.5", "f1_at_chosen", *RANKING]
    say("| family | class_weight | " + " | ".join(columns) + " |")
    say("|---|---|" + "---|" * len(columns))
    for (family, weighting), rows in results.items():
        values = [statistics.median(r[c] for r in rows) for c in columns]
        say(f"| {family} | {weighting} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    say("")
    for family, picks in chosen.items():
        say(f"auto chose for {family}: {', '.join(picks)} (seeds 1..{args.seeds})")


if __name__ == "__main__":
    main()
