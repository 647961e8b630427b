"""How a registered model answers through MLflow's pyfunc interface (``models:/...``, `make
serve`), and what it needs installed."""

from __future__ import annotations

from functools import cache
from typing import Any

import mlflow
import numpy as np
import polars as pl

from ml_assets.lib.models import Model


class PyfuncModel(mlflow.pyfunc.PythonModel):
    """Serves an ml_assets Model through MLflow's pyfunc interface: P(positive) or the value
    per row, or for more than two classes a frame with one probability column per class,
    named by the class."""

    # Inputs are validated against the logged signature, not against predict()'s type hints.
    _skip_type_hint_validation = True

    def __init__(self, model: Model) -> None:
        self.model = model

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return served(self.model, self.model.predict(pl.from_pandas(model_input)))


def served(model: Model, scores: np.ndarray) -> Any:
    """What the pyfunc answers for ``scores``: the scores, or for K classes a pandas frame
    of one probability column per class name."""
    if model.classes is None:
        return scores
    import pandas as pd

    return pd.DataFrame(scores, columns=[str(c) for c in model.classes])


@cache
def requirements() -> list[str]:
    from importlib.metadata import version

    pkgs = ["polars", "numpy", "lightgbm", "statsmodels", "scikit-learn", "mlflow", "pyarrow"]
    return [f"{p}=={version(p)}" for p in pkgs] + ["ml_assets"]
