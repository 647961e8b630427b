"""LightGBM boosters compiled to machine code (lleaves) for scoring large batches.

``Booster.predict`` walks every tree for every row in an interpreter loop; lleaves turns the
model's text into native code through LLVM and predicts the same numbers several times faster.
Compiling costs about a second per few dozen trees, so it pays only for large batches: the
scoring step compiles a champion once per version and machine, keeps the object file in a
local cache, and uses it from ``COMPILE_MIN_ROWS`` rows on. Before trusting a compiled model
it predicts a sample of the batch both ways; any difference beyond floating-point noise (or
any lleaves error) falls back to ``Booster.predict`` with the reason recorded.
"""

from __future__ import annotations

import hashlib
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ml_assets.lib.cores import available_threads

COMPILE_MIN_ROWS = 200_000  # below this, compiling costs more than it saves
CHECK_ROWS = 2_000  # rows predicted both ways before the compiled model is used
TOLERANCE = 1e-9  # relative
BOOSTER = "lightgbm Booster.predict"  # how a batch is scored without the compiled model


def cache_dir() -> Path:
    """Where compiled models are kept: ``ML_ASSETS_COMPILED_CACHE``, else the user's cache.
    Always a local directory: the object file is loaded into this process."""
    configured = os.environ.get("ML_ASSETS_COMPILED_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ml_assets" / "compiled"


def _host() -> str:
    """What the object file is valid for: this CPU (its name and the features LLVM compiles
    for, which a VM may hide) and the lleaves and llvmlite that built it."""
    from importlib.metadata import version

    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features().flatten()
    tools = f"{version('lleaves')}-{version('llvmlite')}"
    digest = hashlib.sha256(f"{features}|{tools}".encode()).hexdigest()[:12]
    return f"{platform.machine()}-{llvm.get_host_cpu_name()}-{digest}"


@dataclass
class Compiled:
    """A booster's compiled form, or why there is none (``model`` None, ``reason`` said)."""

    model: Any
    reason: str
    cache_file: Path | None = None

    def predict(self, codes: np.ndarray) -> np.ndarray:
        assert self.model is not None, self.reason
        return self.model.predict(codes, n_jobs=available_threads())


def compile_booster(booster: Any, directory: Path | None = None) -> Compiled:
    """``booster`` compiled with lleaves, loaded from the cache when this model text was
    compiled on this kind of machine before."""
    directory = directory or cache_dir()
    try:
        import lleaves

        text = booster.model_to_string()
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        directory.mkdir(parents=True, exist_ok=True)
        model_file = directory / f"{digest}.txt"
        if not model_file.exists():
            partial = model_file.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(text)
            partial.replace(model_file)
        cache_file = directory / f"{digest}-{_host()}.o"
        model = lleaves.Model(model_file=str(model_file))
        if cache_file.exists():
            model.compile(cache=str(cache_file))
            return Compiled(model, "loaded from cache", cache_file)
        # Written under a name of this process, then moved into place: another process
        # scoring with the same champion never loads a half-written object file.
        partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
        partial.unlink(missing_ok=True)  # a dead process's leftover, which lleaves would load
        model.compile(cache=str(partial))
        partial.replace(cache_file)
        return Compiled(model, "compiled", cache_file)
    except Exception as error:  # an objective lleaves lacks, an LLVM failure: stay correct
        return Compiled(None, f"lleaves could not compile the booster: {error!r}")


def agrees(compiled: Compiled, booster: Any, codes: np.ndarray) -> str | None:
    """None if the compiled model predicts the first ``CHECK_ROWS`` rows of ``codes`` as the
    booster does, else what differed."""
    sample = codes[:CHECK_ROWS]
    try:
        ours = np.asarray(compiled.predict(sample), dtype=np.float64)
    except Exception as error:
        return f"the compiled model failed on these rows: {error!r}"
    theirs = np.asarray(booster.predict(sample), dtype=np.float64)
    if ours.shape != theirs.shape:
        return f"compiled predictions have shape {ours.shape}, the booster's {theirs.shape}"
    # lleaves sums blocks of trees, LightGBM tree by tree: the last bits may differ, so the
    # bound is relative (with a floor for predictions near zero).
    if not np.allclose(ours, theirs, rtol=TOLERANCE, atol=1e-12):
        gap = float(np.max(np.abs(ours - theirs)))
        return f"compiled predictions differ from the booster's by up to {gap:.3g}"
    return None


def for_batch(
    booster: Any, codes: Callable[[pl.DataFrame], np.ndarray], frame: pl.DataFrame
) -> tuple[Compiled | None, str]:
    """The compiled form of ``booster`` to score ``frame`` with (``codes`` encodes rows for
    it), or None to use the booster; and how the batch will be scored, for the run's
    metadata."""
    if frame.height < COMPILE_MIN_ROWS:
        return None, BOOSTER
    compiled = compile_booster(booster)
    problem = compiled.reason if compiled.model is None else None
    problem = problem or agrees(compiled, booster, codes(frame.head(CHECK_ROWS)))
    if problem:
        return None, f"{BOOSTER} ({problem})"
    return compiled, f"lleaves, native code {compiled.reason}"


def fell_back(how: str) -> bool:
    """Whether ``how`` (from ``for_batch``) says a large batch lost its compiled model."""
    return how.startswith(f"{BOOSTER} (")
