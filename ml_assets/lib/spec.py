"""The ML spec: one YAML file per use case, validated on load.

Errors name the file, the field and the fix, because a spec is written by hand and the first
thing its author sees of a mistake is this message.
"""

from __future__ import annotations

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
    """Where the raw data comes from: a CSV/Parquet file, or a statsmodels bundled dataset."""

    path: str | None = None
    statsmodels: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        if (self.path is None) == (self.statsmodels is None):
            raise ValueError("give exactly one of 'path' (CSV or Parquet file) or 'statsmodels'")
        return self


class SplitConfig(_Strict):
    strategy: SplitStrategy | None = None
    validation_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    seed: int = 42
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
    objective: Literal["auto", "binary", "regression", "poisson"] = "auto"
    params: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "num_leaves": (4, 64),
            "learning_rate": (0.01, 0.3),
            "min_data_in_leaf": (5, 100),
            "feature_fraction": (0.5, 1.0),
            "lambda_l2": (0.001, 10.0),
        }
    )


class Candidates(_Strict):
    glm: GLMCandidate | None = GLMCandidate()
    lightgbm: LightGBMCandidate | None = LightGBMCandidate()

    def enabled(self) -> list[str]:
        return [n for n in ("glm", "lightgbm") if (c := getattr(self, n)) is not None and c.enabled]


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


class EvaluationConfig(_Strict):
    bootstrap_samples: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
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
    validation: ValidationConfig = ValidationConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
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
    def split_strategy(self) -> SplitStrategy:
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

    if spec.task == "forecasting":
        raise ValueError(
            "task 'forecasting' is not available yet; use classification or regression"
        )
    known = metric_names_for(spec.task)
    for metric in [spec.primary_metric, *spec.metrics.secondary, *spec.success_criteria.thresholds]:
        if metric not in known:
            raise ValueError(
                f"unknown metric '{metric}' for task {spec.task}; choose from {sorted(known)}"
            )
    if spec.split_strategy == "temporal" and not spec.time_column:
        raise ValueError("split strategy 'temporal' needs 'time_column'")
    if spec.split_strategy == "stratified" and spec.task != "classification":
        raise ValueError("split strategy 'stratified' is only for classification; use 'random'")
    if spec.split.validation_fraction + spec.split.test_fraction >= 0.8:
        raise ValueError("validation_fraction + test_fraction must leave at least 20% for training")
    if spec.target in spec.drop:
        raise ValueError(f"target '{spec.target}' is also listed in 'drop'")
    if not spec.candidates.enabled():
        raise ValueError("no candidate enabled under 'candidates' (glm, lightgbm)")
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
