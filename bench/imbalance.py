"""Class weighting and the threshold choice on rare events, on the validation and test splits.

Generates seeded rare-event tables (``ml_assets.lib.rare_events``: 2% positives) and, for
each, trains our GLM and LightGBM candidates with ``class_weight: none`` and ``balanced``
(and ``auto``, which trains both and keeps the better validation score), selection on the
validation split alone (``cv_folds: 0``), once for a spec whose metric is F1 and once for one
whose metric is balanced accuracy. Beside them, what a user would write by hand: LightGBM at
its library defaults (100 trees, 31 leaves, learning rate 0.1) on the same train rows, plain
and with ``is_unbalance``, its threshold chosen on validation the same way. Prints, per spec
metric, family and weighting, that metric at the fixed threshold 0.5 and at the threshold
chosen on validation for it, on validation and on the test split (rows no choice saw), average
precision on both, and recall at precision 0.30 on validation; then, per family, the median over
seeds of the paired differences (and in how many seeds it rose and fell) that weighting made at
0.5 and at the chosen threshold, and that the threshold choice made for the unweighted fit; and
what auto changed on test against the unweighted fit and against the hand-written LightGBM, and
how often auto kept the weighted fit.

Run: .venv/bin/python bench/imbalance.py [--rows 20000] [--seeds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import lightgbm as lgb
import numpy as np
import polars as pl

from ml_assets.lib.data import SPLIT, build_features
from ml_assets.lib.families import train_tabular
from ml_assets.lib.metrics import get_metric, score
from ml_assets.lib.models import Model, TrainingData, prepare
from ml_assets.lib.preprocess import Preprocessor
from ml_assets.lib.rare_events import SHAPES, rare_events
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.splits import assign_splits
from ml_assets.lib.thresholds import choose_threshold, labels_at

RANKING = ("average_precision", "recall_at_precision_30")
METRICS = ("f1", "balanced_accuracy")
REFERENCE = "lightgbm by hand"


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


def data_for(spec: MLSpec, raw: pl.DataFrame) -> tuple[TrainingData, TrainingData]:
    """The candidates' train and validation rows, and the same train rows with the test split
    in the validation place (read only to score a chosen threshold out of sample)."""
    splits = assign_splits(spec, build_features(spec, raw))
    part = {s: splits.filter(pl.col(SPLIT) == s) for s in ("train", "validation", "test")}
    return (
        prepare(spec, part["train"], part["validation"]),
        prepare(spec, part["train"], part["test"]),
    )


def figures(
    scores: np.ndarray,
    threshold: float,
    data: TrainingData,
    test_scores: np.ndarray,
    y_test: np.ndarray,
    metric: str,
) -> dict[str, float]:
    y, label_metric, ap = data.y_validation, get_metric(metric), get_metric("average_precision")
    out = {
        "at_0.5": score(label_metric, y, labels_at(scores, 0.5)),
        "at_chosen": score(label_metric, y, labels_at(scores, threshold)),
        "test_at_0.5": score(label_metric, y_test, labels_at(test_scores, 0.5)),
        "test_at_chosen": score(label_metric, y_test, labels_at(test_scores, threshold)),
        "test_average_precision": score(ap, y_test, test_scores),
    }
    return out | {name: score(get_metric(name), y, scores) for name in RANKING}


def model_figures(model: Model, data: TrainingData, test: TrainingData, metric: str) -> dict:
    scores = model.predict(data.validation) if model.validation_scores is None else None
    scores = model.validation_scores if scores is None else scores
    test_scores = model.predict(test.validation)
    return figures(scores, model.threshold, data, test_scores, test.y_validation, metric)


def by_hand(data: TrainingData, test: TrainingData, unbalanced: bool, metric: str) -> dict:
    """LightGBM at its defaults on the train rows (``is_unbalance`` when asked), categories
    as codes (the pipeline's ``Preprocessor``, fitted on train), its threshold chosen on
    validation for ``metric``."""
    prep = Preprocessor.fit(data.train, data.features, data.categorical)
    cats = list(range(len(prep.numeric), len(prep.features)))
    params = {"objective": "binary", "seed": 0, "verbosity": -1, "num_threads": 2}
    params |= {"deterministic": True, "is_unbalance": unbalanced}
    train_set = lgb.Dataset(prep.codes(data.train), data.y_train, categorical_feature=cats)
    booster = lgb.train(params, train_set, 100)
    scores = booster.predict(prep.codes(data.validation))
    threshold = choose_threshold(data.y_validation, scores, metric)
    test_scores = booster.predict(prep.codes(test.validation))
    return figures(scores, threshold, data, test_scores, test.y_validation, metric)


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
                data, test = data_for(spec, raw)
                for family in spec.families:
                    model = train_tabular(spec, family, data, get_metric(metric))
                    if weighting == "auto":
                        picked = str(model.params["class_weight"])
                        chosen.setdefault((metric, family), []).append(picked)
                    key = (metric, family, weighting)
                    results.setdefault(key, []).append(model_figures(model, data, test, metric))
                if weighting != "auto":
                    key = (metric, REFERENCE, weighting)
                    hand = by_hand(data, test, weighting == "balanced", metric)
                    results.setdefault(key, []).append(hand)
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
    columns = [
        "at_0.5",
        "at_chosen",
        "test_at_0.5",
        "test_at_chosen",
        "average_precision",
        "test_average_precision",
        "recall_at_precision_30",
    ]
    say("| spec metric | family | class_weight | " + " | ".join(columns) + " |")
    say("|---|---|---|" + "---|" * len(columns))
    families = ("glm", "lightgbm", REFERENCE)
    weightings = ("none", "balanced", "auto")
    in_order = sorted(
        results.items(),
        key=lambda kv: (
            METRICS.index(kv[0][0]),
            families.index(kv[0][1]),
            weightings.index(kv[0][2]),
        ),
    )
    for (metric, family, weighting), per_seed in in_order:
        values = [statistics.median(r[c] for r in per_seed) for c in columns]
        cells = " | ".join(f"{v:.4f}" for v in values)
        say(f"| {metric} | {family} | {weighting} | {cells} |")
    say("")
    say(
        f"Paired by seed, median difference (+seeds where it rose, -where it fell, of {seeds}): "
        "weighting is balanced - none at the same threshold; the threshold choice is the "
        "chosen threshold - 0.5, both fits unweighted\n"
    )
    say(
        "| spec metric | family | weighting at 0.5 | weighting at chosen | weighting at chosen, "
        "test | threshold choice | threshold choice, test |"
    )
    say("|---|---|---|---|---|---|---|")
    for metric in METRICS:
        for family in families:
            none = results[(metric, family, "none")]
            balanced = results[(metric, family, "balanced")]
            cells = [
                paired(none, balanced, column, column)
                for column in ("at_0.5", "at_chosen", "test_at_chosen")
            ]
            cells.append(paired(none, none, "at_0.5", "at_chosen"))
            cells.append(paired(none, none, "test_at_0.5", "test_at_chosen"))
            say(f"| {metric} | {family} | " + " | ".join(cells) + " |")
    say("")
    say(
        "auto, as the pipeline runs by default, on test (each model at its own chosen "
        "threshold), paired by seed against our unweighted fit and the hand-written LightGBM\n"
    )
    say(
        "| spec metric | family | auto - none | auto - by hand | auto - by hand is_unbalance "
        "| auto kept balanced |"
    )
    say("|---|---|---|---|---|---|")
    for metric in METRICS:
        plain, unbalanced = (results[(metric, REFERENCE, w)] for w in ("none", "balanced"))
        for family in families[:2]:
            auto = results[(metric, family, "auto")]
            picks = chosen[(metric, family)]
            cells = [
                paired(before, auto, "test_at_chosen", "test_at_chosen")
                for before in (results[(metric, family, "none")], plain, unbalanced)
            ]
            cells.append(f"{picks.count('balanced')} of {len(picks)}")
            say(f"| {metric} | {family} | " + " | ".join(cells) + " |")


def paired(
    before: list[dict[str, float]], after: list[dict[str, float]], was: str, now: str
) -> str:
    """after[now] - before[was] per seed: the median, in how many seeds it rose and fell."""
    gains = [a[now] - b[was] for b, a in zip(before, after, strict=True)]
    rose, fell = sum(g > 0 for g in gains), sum(g < 0 for g in gains)
    return f"{statistics.median(gains):+.4f} (+{rose} -{fell})"


if __name__ == "__main__":
    main()
