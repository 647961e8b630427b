"""The sections of an ML spec (every block of the YAML file but the top level), validated
field by field; ``spec.MLSpec`` puts them together and checks them against each other."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Task = Literal["classification", "regression", "forecasting"]
SplitStrategy = Literal["stratified", "random", "temporal"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(Strict):
    """Where the raw data comes from: a CSV/Parquet file, a statsmodels bundled dataset, or the
    most recent days of the spec's own monitored stream (``monitoring.incoming``)."""

    path: str | None = None
    statsmodels: str | None = None
    recent_days: int | None = Field(
        None,
        ge=1,
        description="train on the daily files of the last N days of monitoring.incoming, "
        "ending at the run's window end (tag ml_assets/window_end) or the newest file",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        given = [v for v in (self.path, self.statsmodels, self.recent_days) if v is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'path' (CSV or Parquet file), 'statsmodels' (a bundled "
                "dataset) or 'recent_days' (a window of the monitored daily stream)"
            )
        return self


class SplitConfig(Strict):
    strategy: SplitStrategy | None = None
    validation_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    seed: int = 42
    group_columns: list[str] = Field(
        default_factory=list,
        description="rows with equal values in these columns go to the same split (e.g. a "
        "customer id), so no entity is both learned from and tested on",
    )
    gap: float | str | None = Field(
        None,
        description="temporal only: time left out before validation and test "
        "(a polars duration like '7d' for date columns, a number for numeric ones)",
    )
    refit: bool | None = Field(
        None,
        description="tabular candidates: after the settings (trees, threshold) are chosen, on "
        "the validation rows or by cross-validation, the final model is fitted with them on "
        "train + validation rows (false: on train rows only); the selection scores stay "
        "those of fits that never saw the rows they score; unset: refit up to 200,000 train "
        "+ validation rows, where a third more rows still moves the model, and not above, "
        "where it would cost a second whole fit for little",
    )
    cv_folds: int | None = Field(
        None,
        ge=0,
        le=20,
        description="tabular specs: candidates and their hyperparameters are chosen by k-fold "
        "cross-validation on train + validation rows, folds made as the split strategy makes "
        "its splits (whole groups, time order, class shares); 0 chooses on the validation "
        "split alone; unset: 5 folds under 50,000 train + validation rows, else 0",
    )


class MetricsConfig(Strict):
    primary: str | None = None
    secondary: list[str] = Field(default_factory=list)
    threshold_for: str | None = Field(
        None,
        description="classification: the label metric (f1, accuracy, balanced_accuracy, "
        "precision, recall) the decision threshold maximises on validation; unset: the first "
        "label metric among primary and secondary, else f1",
    )


class Bound(Strict):
    min: float | None = None
    max: float | None = None


class SuccessCriteria(Strict):
    thresholds: dict[str, Bound] = Field(default_factory=dict)
    min_relative_improvement: float = Field(0.0, ge=0.0)
    # A candidate that repeats the champion is refused; registering it too only adds versions
    # that cannot be told apart.
    register_repeats: bool = False


class GLMCandidate(Strict):
    enabled: bool = True
    family: Literal["auto", "binomial", "multinomial", "poisson", "gaussian"] = "auto"


class LightGBMCandidate(Strict):
    enabled: bool = True
    budget: int = Field(20, ge=1, le=500, description="hyperparameter search trials")
    num_boost_round: int = Field(1000, ge=1)
    early_stopping_rounds: int = Field(50, ge=1)
    early_stopping_fraction: float = Field(
        0.15, gt=0.0, lt=0.5, description="share of training rows held out to stop boosting"
    )
    objective: Literal["auto", "binary", "multiclass", "regression", "poisson"] = "auto"
    params: dict[str, Any] = Field(default_factory=dict)
    search_rows: int = Field(
        200_000,
        ge=1_000,
        description="with more fit rows than this, trials fit a seeded subsample of this size "
        "and the best `finalists` are refit on every row (successive halving)",
    )
    finalists: int = Field(2, ge=1, description="trials refit on every row after the search")
    search: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "num_leaves": (4, 64),
            "learning_rate": (0.01, 0.3),
            "min_data_in_leaf": (5, 100),
            "feature_fraction": (0.5, 1.0),
            "lambda_l2": (0.001, 10.0),
        }
    )


class ETSCandidate(Strict):
    """Additive Holt-Winters exponential smoothing (statsmodels); normal intervals from its
    state-space h-step variance (a multiplicative season: model the log of the series)."""

    enabled: bool = True
    trend: Literal["add"] | None = "add"
    damped_trend: bool = False
    seasonal: Literal["add"] | None = "add"


class SARIMAXCandidate(Strict):
    """statsmodels SARIMAX; seasonality enters as Fourier terms (cheap for long periods)."""

    enabled: bool = True
    order: tuple[int, int, int] | Literal["auto"] = Field(
        (1, 1, 1),
        description="(p, d, q), or auto: at every fit, d by a KPSS test (0 or 1) and p, q in "
        "0..max_order by AIC on the history being fitted (the holdout never takes part)",
    )
    max_order: int = Field(2, ge=0, le=3, description="order: auto searches p and q up to this")
    fourier_terms: int = Field(3, ge=0, le=20)
    trend: Literal["n", "c", "t", "ct"] = "c"


class ProphetCandidate(Strict):
    enabled: bool = True
    seasonality_mode: Literal["additive", "multiplicative"] = "additive"
    uncertainty_samples: int = Field(300, ge=0)
    changepoint_prior_scale: float = Field(0.05, gt=0)


# Every model family a spec can name under `candidates`: its settings and the tasks it serves,
# in the order its assets are listed. The trainers are in families.py (kept in step by a test).
FAMILY_SETTINGS: dict[str, tuple[type[Strict], tuple[Task, ...]]] = {
    "glm": (GLMCandidate, ("classification", "regression")),
    "ets": (ETSCandidate, ("forecasting",)),
    "sarimax": (SARIMAXCandidate, ("forecasting",)),
    "prophet": (ProphetCandidate, ("forecasting",)),
    "lightgbm": (LightGBMCandidate, ("classification", "regression", "forecasting")),
}


def families_for(task: str) -> list[str]:
    return [name for name, (_, tasks) in FAMILY_SETTINGS.items() if task in tasks]


class Candidates(Strict):
    """Model families to try. Listing any family selects exactly the listed ones;
    listing none selects every family of the task with default settings."""

    glm: GLMCandidate | None = None
    lightgbm: LightGBMCandidate | None = None
    ets: ETSCandidate | None = None
    sarimax: SARIMAXCandidate | None = None
    prophet: ProphetCandidate | None = None

    def configured(self) -> list[str]:
        return [n for n in type(self).model_fields if getattr(self, n) is not None]

    def enabled(self, task: str) -> list[str]:
        families = families_for(task)
        if not self.configured():
            return list(families)
        return [n for n in families if (c := getattr(self, n)) is not None and c.enabled]

    def config(self, family: str) -> Any:
        """The family's settings, or its defaults when the family was not listed."""
        return getattr(self, family) or FAMILY_SETTINGS[family][0]()


class ForecastConfig(Strict):
    """Forecasting settings: the grid of the series, what to forecast and how to backtest."""

    frequency: str = Field(description="polars duration of one step, e.g. '1w', '1d', '1mo'")
    horizon: int = Field(ge=1, description="steps forecast from each origin")
    seasonal_period: int = Field(1, ge=1, description="steps per season (52 for weekly/yearly)")
    folds: int = Field(3, ge=1, le=50, description="rolling-origin backtest folds")
    imputation: Literal["none", "linear", "forward_fill"] = "none"
    max_gap_fraction: float = Field(0.1, ge=0.0, le=1.0)
    exogenous: list[str] = Field(default_factory=list)

    @field_validator("frequency")
    @classmethod
    def _one_unit(cls, value: str) -> str:
        if not re.fullmatch(r"\d+(ns|us|ms|s|m|h|d|w|mo|q|y)?", value):
            raise ValueError(
                f"'{value}' is not a frequency: use a count and one polars unit, e.g. 1d, 1w, "
                "1mo, 1q, 1y, 6h (or a plain integer step for integer time columns)"
            )
        return value


class ColumnContract(Strict):
    type: Literal["numeric", "string", "bool", "datetime"] | None = None
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    nullable: bool = True


class ValidationConfig(Strict):
    min_rows: int = Field(50, ge=1)
    max_rows: int | None = None
    max_duplicate_fraction: float = Field(0.05, ge=0.0, le=1.0)
    learn: bool = Field(
        True, description="learn types, ranges and categories from the first valid data"
    )
    range_tolerance: float = Field(0.1, ge=0.0)
    learned_range_outside_share: float = Field(
        0.001,
        ge=0.0,
        le=1.0,
        description="share of rows a learned (not declared) range tolerates outside it, as a "
        "warning; more blocks",
    )
    null_rate_tolerance: float = Field(
        0.1, ge=0.0, le=1.0, description="null rate a column may gain over the learned one"
    )
    columns: dict[str, ColumnContract] = Field(default_factory=dict)
    expectations: list[dict[str, dict[str, Any]]] = Field(default_factory=list)

    @field_validator("expectations")
    @classmethod
    def _one_expectation_per_item(cls, items: list[dict[str, dict[str, Any]]]) -> Any:
        for i, item in enumerate(items):
            if len(item) != 1 or not next(iter(item)).startswith("expect_"):
                raise ValueError(
                    f"item {i} must be one GX expectation name mapped to its arguments, e.g. "
                    "'- expect_column_values_to_be_between: {column: age, min_value: 0}'"
                )
        return items


class MonitoringConfig(Strict):
    """Daily batch scoring with the registered champion, drift monitoring against its training
    reference, and the thresholds at which retraining is requested."""

    start_date: dt.date | None = Field(
        None,
        description="first day of the daily partitions; omitted: the earliest file in "
        "'incoming' when the definitions load (today while there is none)",
    )
    incoming: str = Field(
        "incoming",
        description="folder under <data dir>/<spec>/ with one <YYYY-MM-DD>.parquet per day",
    )
    psi_threshold: float = Field(0.2, gt=0, description="a feature with PSI above this drifted")
    p_threshold: float = Field(0.01, gt=0, lt=1, description="or with a test p-value below this")
    max_drifted_share: float = Field(0.3, ge=0, le=1, description="retrain above this share")
    max_psi: float = Field(0.5, gt=0, description="retrain when any feature's PSI exceeds this")
    cooldown_hours: float = Field(24.0, ge=0, description="least time between drift retrainings")
    retrain_cron: str = Field("0 3 * * 1", description="weekly safety-net retraining (cron)")
    shadow_days: int | None = Field(
        None,
        ge=1,
        description="promote the challenger (scored in the champion's shadow every day) once "
        "this many of its shadow days have labels and its paired improvement's CI is above 0; "
        "retire it if by then the CI is below 0. Omitted: the comparison is reported only",
    )


class FairnessConfig(Strict):
    """Rates per group of people and their disparities, for a classifier on the test split."""

    columns: list[str] = Field(
        min_length=1,
        description="one table of groups per column; a column also listed in 'drop' is kept "
        "for this report and never given to a model",
    )
    metrics: list[Literal["demographic_parity_difference", "equalized_odds_difference"]] = Field(
        default_factory=lambda: [
            "demographic_parity_difference",
            "equalized_odds_difference",
        ]
    )
    max_disparity: float | None = Field(None, gt=0.0, le=1.0)
    min_group_rows: int = Field(
        30,
        ge=1,
        description="groups with fewer test rows (or, for TPR and FPR, fewer positives or "
        "negatives) are listed but left out of the disparities: their rates are noise",
    )
    block: bool = Field(
        False, description="a disparity above max_disparity fails the promotion gate"
    )


class EvaluationConfig(Strict):
    bootstrap_samples: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    bootstrap_max_rows: int = Field(
        20_000,
        ge=0,
        description="above this many rows, CIs are normal with influence-function standard "
        "errors instead of a bootstrap (resamples x rows of work)",
    )
    diagnostic_rows: int = Field(
        1_000,
        ge=10,
        description="TreeSHAP importance and scatter plots use a seeded sample of this many "
        "test rows at most; metrics, CIs, calibration and segments use every row",
    )
    segment_columns: list[str] = Field(default_factory=list)
    calibration_bins: int = Field(10, ge=2)
