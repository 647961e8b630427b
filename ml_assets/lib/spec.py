"""The ML spec: one YAML file per use case, validated on load.

Errors name the file, the field and the fix, because a spec is written by hand and the first
thing its author sees of a mistake is this message.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import importlib.util
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Task = Literal["classification", "regression", "forecasting"]
SplitStrategy = Literal["stratified", "random", "temporal"]

BUILTIN_SPEC_DIR = Path(__file__).resolve().parent.parent / "specs"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class SpecError(ValueError):
    """A spec that cannot be used, with a message that says where and how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
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


class SplitConfig(_Strict):
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


class MetricsConfig(_Strict):
    primary: str | None = None
    secondary: list[str] = Field(default_factory=list)


class Bound(_Strict):
    min: float | None = None
    max: float | None = None


class SuccessCriteria(_Strict):
    thresholds: dict[str, Bound] = Field(default_factory=dict)
    min_relative_improvement: float = Field(0.0, ge=0.0)


class GLMCandidate(_Strict):
    enabled: bool = True
    family: Literal["auto", "binomial", "poisson", "gaussian"] = "auto"


class LightGBMCandidate(_Strict):
    enabled: bool = True
    budget: int = Field(20, ge=1, le=500, description="hyperparameter search trials")
    num_boost_round: int = Field(1000, ge=1)
    early_stopping_rounds: int = Field(50, ge=1)
    early_stopping_fraction: float = Field(
        0.15, gt=0.0, lt=0.5, description="share of training rows held out to stop boosting"
    )
    objective: Literal["auto", "binary", "regression", "poisson"] = "auto"
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


class ETSCandidate(_Strict):
    """statsmodels ETSModel (additive errors); intervals from its state-space model."""

    enabled: bool = True
    trend: Literal["add", "mul"] | None = "add"
    damped_trend: bool = False
    seasonal: Literal["add", "mul"] | None = "add"


class SARIMAXCandidate(_Strict):
    """statsmodels SARIMAX; seasonality enters as Fourier terms (cheap for long periods)."""

    enabled: bool = True
    order: tuple[int, int, int] = (1, 1, 1)
    fourier_terms: int = Field(3, ge=0, le=20)
    trend: Literal["n", "c", "t", "ct"] = "c"


class ProphetCandidate(_Strict):
    enabled: bool = True
    seasonality_mode: Literal["additive", "multiplicative"] = "additive"
    uncertainty_samples: int = Field(300, ge=0)
    changepoint_prior_scale: float = Field(0.05, gt=0)


TABULAR_FAMILIES = ("glm", "lightgbm")
FORECAST_FAMILIES = ("ets", "sarimax", "prophet", "lightgbm")


class Candidates(_Strict):
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
        families = TABULAR_FAMILIES if task != "forecasting" else FORECAST_FAMILIES
        if not self.configured():
            return list(families)
        return [n for n in families if (c := getattr(self, n)) is not None and c.enabled]

    def config(self, family: str) -> Any:
        """The family's settings, or its defaults when the family was not listed."""
        defaults = {
            "glm": GLMCandidate,
            "lightgbm": LightGBMCandidate,
            "ets": ETSCandidate,
            "sarimax": SARIMAXCandidate,
            "prophet": ProphetCandidate,
        }
        return getattr(self, family) or defaults[family]()


class ForecastConfig(_Strict):
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


class ColumnContract(_Strict):
    type: Literal["numeric", "string", "bool", "datetime"] | None = None
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    nullable: bool = True


class ValidationConfig(_Strict):
    min_rows: int = Field(50, ge=1)
    max_rows: int | None = None
    max_duplicate_fraction: float = Field(0.05, ge=0.0, le=1.0)
    learn: bool = Field(
        True, description="learn types, ranges and categories from the first valid data"
    )
    range_tolerance: float = Field(0.1, ge=0.0)
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


class MonitoringConfig(_Strict):
    """Daily batch scoring with the registered champion, drift monitoring against its training
    reference, and the thresholds at which retraining is requested."""

    start_date: dt.date = Field(description="first day of the daily partitions")
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


class EvaluationConfig(_Strict):
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


class MLSpec(_Strict):
    """One ML use case. See README for every field."""

    name: str
    description: str = ""
    task: Task
    source: Source
    target: str
    derive: dict[str, str] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    time_column: str | None = None
    split: SplitConfig = SplitConfig()
    metrics: MetricsConfig = MetricsConfig()
    success_criteria: SuccessCriteria = SuccessCriteria()
    candidates: Candidates = Candidates()
    forecast: ForecastConfig | None = None
    validation: ValidationConfig = ValidationConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    monitoring: MonitoringConfig | None = None
    spec_path: Path = Field(Path("."), exclude=True)

    @field_validator("name")
    @classmethod
    def _snake_case(cls, name: str) -> str:
        if not NAME_PATTERN.match(name):
            raise ValueError(f"'{name}' is not snake_case: use lowercase letters, digits and _")
        return name

    @model_validator(mode="after")
    def _consistent(self) -> MLSpec:
        return _check_consistency(self)

    @property
    def families(self) -> list[str]:
        return self.candidates.enabled(self.task)

    @property
    def split_strategy(self) -> SplitStrategy:
        if self.task == "forecasting":
            return "temporal"
        if self.split.strategy:
            return self.split.strategy
        if self.time_column:
            return "temporal"
        return "stratified" if self.task == "classification" else "random"

    @property
    def primary_metric(self) -> str:
        if self.metrics.primary:
            return self.metrics.primary
        return {"classification": "roc_auc", "regression": "rmse", "forecasting": "mase"}[self.task]

    @property
    def all_metrics(self) -> list[str]:
        """Primary first, then secondary and any metric a success threshold names."""
        named = [*self.metrics.secondary, *self.success_criteria.thresholds]
        rest = [m for m in dict.fromkeys(named) if m != self.primary_metric]
        return [self.primary_metric, *rest]

    @property
    def source_file(self) -> Path | None:
        if self.source.path is None:
            return None
        path = Path(self.source.path).expanduser()
        return path if path.is_absolute() else (self.spec_path.parent / path).resolve()

    def digest(self) -> str:
        """A short content hash of the spec as validated, for lineage tags."""
        text = self.model_dump_json(exclude={"spec_path"})
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _check_consistency(spec: MLSpec) -> MLSpec:
    from ml_assets.lib.metrics import metric_names_for

    known = metric_names_for(spec.task)
    for metric in [spec.primary_metric, *spec.metrics.secondary, *spec.success_criteria.thresholds]:
        if metric not in known:
            raise ValueError(
                f"unknown metric '{metric}' for task {spec.task}; choose from {sorted(known)}"
            )
    allowed = FORECAST_FAMILIES if spec.task == "forecasting" else TABULAR_FAMILIES
    wrong = [f for f in spec.candidates.configured() if f not in allowed]
    if wrong:
        raise ValueError(f"candidates {wrong} are not for task {spec.task}; use {list(allowed)}")
    if not spec.families:
        raise ValueError(f"no candidate enabled under 'candidates' ({', '.join(allowed)})")
    if spec.task == "forecasting":
        return _check_forecasting(spec)
    if spec.forecast is not None:
        raise ValueError("'forecast' settings are only for task 'forecasting'")
    if spec.split_strategy == "temporal" and not spec.time_column:
        raise ValueError("split strategy 'temporal' needs 'time_column'")
    if spec.split_strategy == "stratified" and spec.task != "classification":
        raise ValueError("split strategy 'stratified' is only for classification; use 'random'")
    if spec.split.validation_fraction + spec.split.test_fraction >= 0.8:
        raise ValueError("validation_fraction + test_fraction must leave at least 20% for training")
    if spec.target in spec.drop:
        raise ValueError(f"target '{spec.target}' is also listed in 'drop'")
    dropped = sorted(set(spec.evaluation.segment_columns) & set(spec.drop))
    if dropped:
        raise ValueError(
            f"evaluation.segment_columns {dropped} are listed in 'drop'; segments must be columns "
            "that reach the test split"
        )
    if spec.split.group_columns and spec.split_strategy != "random":
        raise ValueError("split.group_columns needs split strategy 'random'")
    if spec.source.recent_days is not None and (spec.monitoring is None or not spec.time_column):
        raise ValueError(
            "source 'recent_days' reads the daily files of monitoring.incoming: add a "
            "'monitoring' section and a 'time_column' (the day of each row) so the window "
            "splits by time"
        )
    return spec


def _check_forecasting(spec: MLSpec) -> MLSpec:
    if not spec.time_column:
        raise ValueError("task 'forecasting' needs 'time_column'")
    if spec.forecast is None:
        raise ValueError(
            "task 'forecasting' needs a 'forecast' section with at least 'frequency' and "
            "'horizon', e.g. forecast: {frequency: 1w, horizon: 52, seasonal_period: 52}"
        )
    if spec.split.strategy not in (None, "temporal"):
        raise ValueError("forecasting always splits by time; remove 'split.strategy'")
    if spec.target in spec.drop or spec.time_column in spec.drop:
        raise ValueError("the target and time_column cannot be listed in 'drop'")
    if spec.source.recent_days is not None:
        raise ValueError("source 'recent_days' is for classification and regression specs")
    if spec.monitoring is not None:
        raise ValueError(
            "'monitoring' (daily scoring and drift) is for classification and regression specs; "
            "a forecasting spec's outlook is its 'forecast' asset"
        )
    return spec


def _describe_errors(path: Path, err: ValidationError, allowed: dict[str, list[str]]) -> str:
    lines = [f"invalid ML spec {path}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            options = allowed.get(_field_path(e["loc"][:-1], allowed), [])
            close = difflib.get_close_matches(str(e["loc"][-1]), options, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            msg = f"unknown field.{hint} Allowed here: {', '.join(options)}"
        elif e["type"] == "missing":
            msg = "required field is missing; add it to the spec"
        lines.append(f"  field '{loc}': {msg}")
    return "\n".join(lines)


def _field_path(loc: tuple[Any, ...], allowed: dict[str, list[str]]) -> str:
    """The nesting path of ``loc`` with user-chosen dict keys replaced by '*'."""
    path = ""
    for part in loc:
        step = f"{path}.{part}" if path else str(part)
        path = step if step in allowed or str(part) in allowed.get(path, []) else f"{path}.*"
    return path


def _allowed_fields() -> dict[str, list[str]]:
    """Field names per nesting path, for 'did you mean' hints."""
    out: dict[str, list[str]] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        out[prefix] = [f for f in model.model_fields if f != "spec_path"]
        for name, field in model.model_fields.items():
            ann = field.annotation
            path = f"{prefix}.{name}" if prefix else name
            if get_origin(ann) is dict:  # user-chosen keys (column, metric names) stand as '*'
                ann, path = get_args(ann)[1], f"{path}.*"
            for cand in getattr(ann, "__args__", (ann,)):
                if isinstance(cand, type) and issubclass(cand, BaseModel):
                    walk(cand, path)

    walk(MLSpec, "")
    return out


def _check_source_exists(spec: MLSpec, path: Path) -> None:
    if spec.source_file is not None:
        src = spec.source_file
        if not src.exists():
            raise SpecError(
                f"invalid ML spec {path}: field 'source.path': file {src} does not exist "
                "(relative paths are resolved against the spec file's directory)"
            )
        if src.suffix.lower() not in {".csv", ".parquet", ".pq"}:
            raise SpecError(
                f"invalid ML spec {path}: field 'source.path': {src.name} is neither .csv "
                "nor .parquet"
            )
    elif spec.source.statsmodels and spec.source.statsmodels not in statsmodels_datasets():
        close = difflib.get_close_matches(spec.source.statsmodels, statsmodels_datasets(), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise SpecError(
            f"invalid ML spec {path}: field 'source.statsmodels': no bundled statsmodels "
            f"dataset named '{spec.source.statsmodels}'.{hint}"
        )


def statsmodels_datasets() -> list[str]:
    """Names of the datasets bundled with statsmodels, found without importing statsmodels."""
    found = importlib.util.find_spec("statsmodels")
    if found is None or not found.submodule_search_locations:
        return []
    root = Path(next(iter(found.submodule_search_locations))) / "datasets"
    return sorted(p.name for p in root.iterdir() if (p / "__init__.py").exists())


def load_spec(path: Path) -> MLSpec:
    """Read and validate one spec file; raise SpecError naming the file, field and fix."""
    path = Path(path).resolve()
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise SpecError(f"ML spec file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid ML spec {path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"invalid ML spec {path}: expected a mapping of fields, got {type(raw)}")
    try:
        spec = MLSpec.model_validate({**raw, "spec_path": path})
    except ValidationError as exc:
        raise SpecError(_describe_errors(path, exc, _allowed_fields())) from None
    _check_source_exists(spec, path)
    return spec


def discover_specs(extra_dir: str | None = None) -> list[MLSpec]:
    """Built-in specs plus every ``*.yaml`` in ``extra_dir``; names must be unique."""
    files = sorted(BUILTIN_SPEC_DIR.glob("*.yaml"))
    if extra_dir:
        directory = Path(extra_dir).expanduser()
        if not directory.is_dir():
            raise SpecError(f"ML_ASSETS_SPECS={extra_dir} is not a directory")
        files += sorted(directory.glob("*.yaml"))
    specs: dict[str, MLSpec] = {}
    for file in files:
        spec = load_spec(file)
        if spec.name in specs:
            raise SpecError(
                f"spec name '{spec.name}' in {file} is already used by "
                f"{specs[spec.name].spec_path}; names must be unique"
            )
        specs[spec.name] = spec
    return list(specs.values())
