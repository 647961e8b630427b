"""The ML spec: one YAML file per use case, validated on load.

Errors name the file, the field and the fix, because a spec is written by hand and the first
thing its author sees of a mistake is this message.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ml_assets.lib.spec_sections import (  # noqa: F401 (the sections are part of this API)
    FAMILY_SETTINGS,
    Bound,
    Candidates,
    ColumnContract,
    ETSCandidate,
    EvaluationConfig,
    FairnessConfig,
    ForecastConfig,
    GLMCandidate,
    LightGBMCandidate,
    MetricsConfig,
    MonitoringConfig,
    ProphetCandidate,
    SARIMAXCandidate,
    Source,
    SplitConfig,
    SplitStrategy,
    Strict,
    SuccessCriteria,
    Task,
    ValidationConfig,
    families_for,
)

BUILTIN_SPEC_DIR = Path(__file__).resolve().parent.parent / "specs"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
# The label metrics a decision threshold can be chosen for (models.choose_threshold).
LABEL_METRICS = ("f1", "accuracy", "balanced_accuracy", "precision", "recall")


class SpecError(ValueError):
    """A spec that cannot be used, with a message that says where and how to fix it."""


class MLSpec(Strict):
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
    class_weight: Literal["auto", "balanced", "none"] | dict[str | int, float] = Field(
        "auto",
        description="classification: row weights by class in every fit (the scores are then "
        "corrected back to probabilities); balanced: n / (classes x rows of the class); auto: "
        "when the rarest class is under 5% of the training rows, each candidate is trained "
        "unweighted and balanced and the selection score keeps the better, else unweighted; "
        "or a weight per label",
    )
    split: SplitConfig = SplitConfig()
    metrics: MetricsConfig = MetricsConfig()
    success_criteria: SuccessCriteria = SuccessCriteria()
    candidates: Candidates = Candidates()
    forecast: ForecastConfig | None = None
    validation: ValidationConfig = ValidationConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    fairness: FairnessConfig | None = None
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
    def threshold_metric(self) -> str:
        """The label metric a classifier's decision threshold is chosen for on validation."""
        if self.metrics.threshold_for:
            return self.metrics.threshold_for
        named = [self.primary_metric, *self.metrics.secondary]
        # Precision or recall alone is maximised by labelling (almost) nothing or everything
        # positive: only chosen when named in threshold_for.
        balanced = ("f1", "accuracy", "balanced_accuracy")
        return next((m for m in named if m in balanced), "f1")

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
        """The source file: a local path (relative to the spec file) or, for a URL such as
        ``s3://bucket/rows.parquet``, a UPath on that filesystem (fsspec)."""
        if self.source.path is None:
            return None
        if "://" in self.source.path:
            from ml_assets.lib.storage import storage_path

            return storage_path(self.source.path)
        path = Path(self.source.path).expanduser()
        return path if path.is_absolute() else (self.spec_path.parent / path).resolve()

    def digest(self) -> str:
        """A short content hash of the spec as validated, for lineage tags."""
        text = self.model_dump_json(exclude={"spec_path"})
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _check_consistency(spec: MLSpec) -> MLSpec:
    from ml_assets.lib.metrics import PARAMETRIC_EXAMPLES, is_metric_for, metric_names_for

    for metric in [spec.primary_metric, *spec.metrics.secondary, *spec.success_criteria.thresholds]:
        if not is_metric_for(metric, spec.task):
            known = sorted(metric_names_for(spec.task))
            if spec.task == "classification":
                known += [f"{e} (any number)" for e in PARAMETRIC_EXAMPLES]
            raise ValueError(f"unknown metric '{metric}' for task {spec.task}; choose from {known}")
    if spec.fairness is not None:
        if spec.task != "classification":
            raise ValueError("'fairness' (rates per group at the threshold) is for classification")
        if spec.fairness.block and spec.fairness.max_disparity is None:
            raise ValueError("fairness.block needs fairness.max_disparity, the bound it enforces")
        if spec.target in spec.fairness.columns:
            raise ValueError(f"fairness.columns: the target '{spec.target}' is not a group")
    if spec.task != "classification" and spec.class_weight != "auto":
        raise ValueError("class_weight is for classification specs")
    if isinstance(spec.class_weight, dict) and any(w <= 0 for w in spec.class_weight.values()):
        raise ValueError(f"class_weight {spec.class_weight}: every weight must be above 0")
    chosen_for = spec.metrics.threshold_for
    if chosen_for is not None and (
        spec.task != "classification" or chosen_for not in LABEL_METRICS
    ):
        raise ValueError(
            f"metrics.threshold_for '{chosen_for}': the decision threshold of a classifier is "
            f"chosen for one of {list(LABEL_METRICS)}"
        )
    allowed = families_for(spec.task)
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
    if spec.split.cv_folds == 1:
        raise ValueError(
            "split.cv_folds: 1 is not cross-validation; use 0 to choose on the validation "
            "split, or 2 or more folds"
        )
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
    if spec.split.cv_folds is not None:
        raise ValueError(
            "split.cv_folds is for classification and regression specs; a forecasting spec "
            "chooses its candidate by rolling-origin backtests: set 'forecast.folds'"
        )
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
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"ML spec file {path} cannot be read as UTF-8 text: {exc}") from exc
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


@dataclass(frozen=True)
class SpecSet:
    """The specs that load, and each file that does not with the error that says why."""

    specs: list[MLSpec]
    broken: dict[Path, SpecError]


def load_all_specs(extra_dir: str | None = None) -> SpecSet:
    """Built-in specs plus every ``*.yaml`` in ``extra_dir`` (names must be unique). A file
    that does not load is kept aside with its error: one broken spec hides no other."""
    files = sorted(BUILTIN_SPEC_DIR.glob("*.yaml"))
    broken: dict[Path, SpecError] = {}
    if extra_dir:
        directory = Path(extra_dir).expanduser()
        if not directory.is_dir():
            broken[directory] = SpecError(f"ML_ASSETS_SPECS={extra_dir} is not a directory")
        else:
            files += sorted(directory.glob("*.yaml"))
    specs: dict[str, MLSpec] = {}
    for file in files:
        try:
            spec = load_spec(file)
        except SpecError as exc:
            broken[file.resolve()] = exc
            continue
        if spec.name in specs:
            broken[file.resolve()] = SpecError(
                f"spec name '{spec.name}' in {file} is already used by "
                f"{specs[spec.name].spec_path}; names must be unique"
            )
            continue
        specs[spec.name] = spec
    return SpecSet(list(specs.values()), broken)


def discover_specs(extra_dir: str | None = None) -> list[MLSpec]:
    """Every spec, as ``load_all_specs`` finds them; the first broken one raises its error."""
    found = load_all_specs(extra_dir)
    if found.broken:
        raise next(iter(found.broken.values()))
    return found.specs
