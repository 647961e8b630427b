"""Boosters compiled by lleaves for large scoring batches: the same numbers as
``Booster.predict`` for every objective our candidates use, a per-machine cache, and a
fallback to the booster whenever the compiled model is missing or disagrees."""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

from ml_assets.lib import compiled
from ml_assets_tests.lib.conftest import Fitted


def _booster(
    objective: str, seed: int = 0, rounds: int = 25, scale: float = 1.0
) -> tuple[lgb.Booster, np.ndarray]:
    """A booster on four numeric columns (one with missing values) and a categorical one,
    and rows to predict that hold missing values and a category it never saw."""
    rng = np.random.default_rng(seed)
    n = 3000
    x = rng.normal(size=(n, 5))
    x[:, 4] = rng.integers(0, 6, n)
    x[rng.random(n) < 0.1, 1] = np.nan
    signal = x[:, 0] - 0.5 * np.nan_to_num(x[:, 1]) + 0.8 * (x[:, 4] == 2) + 0.3 * x[:, 2] * x[:, 3]
    params: dict = {"objective": objective, "verbose": -1, "seed": seed, "num_threads": 1}
    if objective == "binary":
        y = (signal + rng.normal(size=n) > 0).astype(float)
    elif objective == "poisson":
        y = rng.poisson(np.exp(0.3 * signal)).astype(float)
    elif objective == "multiclass":
        y = np.digitize(signal + rng.normal(size=n), [-0.5, 0.7]).astype(float)
        params["num_class"] = 3
    else:
        y = scale * (signal + rng.normal(size=n))
    data = lgb.Dataset(x, y, categorical_feature=[4], free_raw_data=False)
    booster = lgb.train(params, data, rounds)
    rows = rng.normal(size=(5000, 5))
    rows[:, 4] = rng.integers(0, 8, 5000).astype(float)  # codes 6 and 7 never seen
    rows[::7, 0] = np.nan
    rows[::11, 4] = np.nan  # an unseen level, as Preprocessor.codes writes it
    return booster, rows


@pytest.mark.parametrize("objective", ["binary", "regression", "poisson", "multiclass"])
def test_compiled_predictions_are_the_boosters(objective: str, tmp_path: Path) -> None:
    booster, rows = _booster(objective)
    fast = compiled.compile_booster(booster, tmp_path)
    assert fast.model is not None, fast.reason
    np.testing.assert_allclose(fast.predict(rows), booster.predict(rows), rtol=0, atol=1e-12)
    assert compiled.agrees(fast, booster, rows) is None


def test_many_trees_on_a_large_scale_agree_to_a_relative_bound(tmp_path: Path) -> None:
    """Over 34 trees lleaves sums blocks of trees, so its last bits may differ from
    LightGBM's tree-by-tree sum; on targets in the tens of millions that is more than any
    absolute 1e-9, and the compiled model must still be accepted."""
    booster, rows = _booster("regression", rounds=120, scale=3e7)
    fast = compiled.compile_booster(booster, tmp_path)
    assert fast.model is not None, fast.reason
    ours, theirs = fast.predict(rows), booster.predict(rows)
    assert np.abs(theirs).max() > 1e7
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert compiled.agrees(fast, booster, rows) is None


def test_a_dead_compilers_leftover_is_never_loaded(tmp_path: Path) -> None:
    booster, rows = _booster("binary")
    first = compiled.compile_booster(booster, tmp_path)
    assert first.cache_file is not None
    first.cache_file.unlink()
    leftover = first.cache_file.with_suffix(f".{os.getpid()}.tmp")
    leftover.write_bytes(b"half an object file")
    again = compiled.compile_booster(booster, tmp_path)
    assert again.reason == "compiled"
    np.testing.assert_array_equal(again.predict(rows), booster.predict(rows))


def test_a_compiled_model_is_cached_per_model_and_machine(tmp_path: Path) -> None:
    booster, rows = _booster("binary")
    first = compiled.compile_booster(booster, tmp_path)
    again = compiled.compile_booster(booster, tmp_path)
    assert (first.reason, again.reason) == ("compiled", "loaded from cache")
    assert first.cache_file == again.cache_file and again.cache_file is not None
    assert again.cache_file.exists()
    np.testing.assert_array_equal(again.predict(rows), first.predict(rows))
    other, _ = _booster("binary", seed=1)
    assert compiled.compile_booster(other, tmp_path).cache_file != first.cache_file


def test_a_compiled_model_that_disagrees_is_named_and_not_used(tmp_path: Path) -> None:
    booster, rows = _booster("binary")
    other, _ = _booster("binary", seed=1)
    wrong = compiled.compile_booster(other, tmp_path)
    problem = compiled.agrees(wrong, booster, rows)
    assert problem is not None and "differ from the booster's by up to" in problem
    broken = compiled.compile_booster(object(), tmp_path)  # not a booster: nothing to compile
    assert broken.model is None and "lleaves could not compile" in broken.reason


def test_a_large_batch_is_scored_by_the_compiled_champion(
    trained_classification: Fitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the model's own interface: below COMPILE_MIN_ROWS the booster scores; from it
    on the compiled form does, with the same scores, and pickling leaves it behind."""
    monkeypatch.setenv("ML_ASSETS_COMPILED_CACHE", str(tmp_path))
    model = copy.deepcopy(trained_classification.lightgbm)
    rows = pl.concat([trained_classification.test] * 20)
    expected = model.predict(rows)
    assert model.prepare_to_score(rows) == "lightgbm Booster.predict"
    assert model.compiled is None
    monkeypatch.setattr(compiled, "COMPILE_MIN_ROWS", rows.height)
    assert model.prepare_to_score(rows) == "lleaves, native code compiled"
    assert model.compiled is not None
    np.testing.assert_allclose(model.predict(rows), expected, rtol=0, atol=1e-12)
    restored = pickle.loads(pickle.dumps(model))
    assert restored.compiled is None
    np.testing.assert_allclose(restored.predict(rows), expected, rtol=0, atol=1e-12)


def test_scoring_falls_back_to_the_booster_with_the_reason(
    trained_classification: Fitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = copy.deepcopy(trained_classification.lightgbm)
    rows = trained_classification.test
    monkeypatch.setattr(compiled, "COMPILE_MIN_ROWS", 1)
    other, _ = _booster("binary", seed=1)
    stranger = compiled.compile_booster(other, tmp_path)
    monkeypatch.setattr(
        compiled, "compile_booster", lambda booster: compiled.Compiled(None, "no LLVM here")
    )
    assert model.prepare_to_score(rows) == "lightgbm Booster.predict (no LLVM here)"
    assert model.compiled is None
    # a compiled model of another booster (5 columns, not this model's 3) is refused too
    monkeypatch.setattr(compiled, "compile_booster", lambda booster: stranger)
    said = model.prepare_to_score(rows)
    assert said.startswith("lightgbm Booster.predict (the compiled model failed")
    assert compiled.fell_back(said) and not compiled.fell_back(compiled.BOOSTER)
    assert model.compiled is None
