"""MLflow tracking and registry: runs per trained model, registration, the champion alias."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import mlflow
import polars as pl
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from ml_assets.lib.alias_history import (
    NOT_FOUND,
    AliasMove,
    current_version,
    last_move_id,
    move_alias,
    remove_alias,
    rollback,
)
from ml_assets.lib.models import ConstantModel, Model
from ml_assets.lib.names import (
    DATA_FINGERPRINT_TAG,
    GATE_REASONS_TAG,
    MODEL_NAME_TAG,
    PROMOTED_TAG,
    SEEN_UNTIL_TAG,
)

# Pickled models of earlier versions name PyfuncModel in this module.
from ml_assets.lib.pyfunc import PyfuncModel, requirements, served  # noqa: F401
from ml_assets.lib.records import LoggedModel, Trained  # noqa: F401 (Trained: pickles name it here)

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
# A version scored in the champion's shadow (lib/shadow.py), never served.
CHALLENGER_ALIAS = "challenger"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_DEVELOPMENT = "custom_model_development"
REFERENCE_DIR = "reference"
REFERENCE_FILE = "train_sample.parquet"


def run_name(experiment: str, model: Model, tags: dict[str, str]) -> str:
    """'<spec> · <model> · <role>', and the data it learned from: up to its latest time, or
    its data fingerprint when the rows have no time."""
    name = f"{experiment} · {model.name} · {model.role}"
    if until := tags.get(SEEN_UNTIL_TAG):
        return f"{name} · data to {until}"
    fingerprint = tags.get(DATA_FINGERPRINT_TAG, "")
    return f"{name} · data {fingerprint[:8]}" if fingerprint else name


class ChampionLoadError(RuntimeError):
    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"champion v{version} cannot be loaded: {reason}")
        self.version, self.reason = version, reason


@dataclass(frozen=True)
class ChampionRef:
    version: str
    run_id: str
    model: Model


@dataclass(frozen=True)
class Tracker:
    """Everything ml_assets does with MLflow, against one tracking/registry URI."""

    tracking_uri: str
    artifact_root: str | None = None

    @cached_property
    def client(self) -> MlflowClient:
        # One client per tracker: creating one costs ~0.2 s (store and registry setup).
        # Creating a client creates a fresh store's schema: two processes doing it at once
        # crash in MLflow's migrations, so they take turns.
        with self._first_touch_lock():
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            client.search_registered_models(max_results=1)  # the registry store is lazy
        return client

    def _activate(self) -> None:
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    def _first_touch_lock(self) -> contextlib.AbstractContextManager[object]:
        """Steps in parallel processes must not create a fresh SQLite store's schema, or one
        experiment, at once."""
        if self.tracking_uri.startswith("sqlite:///"):
            return FileLock(self.tracking_uri.removeprefix("sqlite:///") + ".lock")
        return contextlib.nullcontext()

    def experiment_id(self, name: str) -> str:
        self._activate()
        client = self.client
        with self._first_touch_lock():  # two processes creating one experiment take turns
            exp = client.get_experiment_by_name(name)
            if exp is not None:
                return exp.experiment_id
            location = f"{self.artifact_root.rstrip('/')}/{name}" if self.artifact_root else None
            # The MLflow UI opens an experiment of this kind in its model-training view (runs,
            # metrics, models), not the GenAI view of traces and prompts.
            try:
                return client.create_experiment(
                    name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_DEVELOPMENT}
                )
            except MlflowException as exc:
                # On a tracking server another process may create it between the two calls.
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                return client.get_experiment_by_name(name).experiment_id

    def log_model(
        self,
        experiment: str,
        model: Model,
        example: pl.DataFrame,
        validation_metrics: dict[str, float],
        tags: dict[str, str],
        reference: pl.DataFrame | None = None,
        cv: pl.DataFrame | None = None,
    ) -> LoggedModel:
        """One MLflow run per trained model: params, validation metrics (the fold means with
        cross-validation, whose folds are logged as steps of ``cv_<metric>``), tags, and for a
        candidate its pyfunc model (signature, example) and optionally a reference sample of
        the training rows for drift monitoring. A baseline's run has no model artifact: its
        learned value is in its params, and only candidates are ever registered."""
        exp_id = self.experiment_id(experiment)
        with mlflow.start_run(
            experiment_id=exp_id, run_name=run_name(experiment, model, tags)
        ) as run:
            mlflow.log_params(_flat_params(model))
            mlflow.log_metrics({f"validation_{k}": v for k, v in validation_metrics.items()})
            for row in cv.iter_rows(named=True) if cv is not None else ():
                step = int(row["fold"])
                mlflow.log_metrics({f"cv_{k}": row[k] for k in validation_metrics}, step=step)
            mlflow.set_tags(
                {**tags, "role": model.role, "family": model.family, MODEL_NAME_TAG: model.name}
            )
            if model.role == "baseline":
                return LoggedModel(run.info.run_id, None, exp_id)
            sample = example.select(model.features).head(5).to_pandas()
            signature = infer_signature(sample, served(model, model.predict(example.head(5))))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=PyfuncModel(model),
                signature=signature,
                input_example=sample,
                pip_requirements=requirements(),
            )
            if reference is not None:
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / REFERENCE_FILE
                    reference.write_parquet(path)
                    mlflow.log_artifact(str(path), artifact_path=REFERENCE_DIR)
        return LoggedModel(run.info.run_id, info.model_uri, exp_id)

    def load_reference(self, run_id: str) -> pl.DataFrame | None:
        """The training-row sample logged with a run, or None when it has none."""
        self._activate()
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=f"{REFERENCE_DIR}/{REFERENCE_FILE}"
            )
        except (MlflowException, OSError):
            return None
        return pl.read_parquet(local)

    def log_evaluation(
        self, run_id: str, metrics: dict[str, float], tags: dict[str, str], files: dict[str, str]
    ) -> None:
        """Test metrics, tags and text artifacts (report, model card) on an existing run."""
        self._activate()
        client = self.client
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        for name, text in files.items():
            client.log_text(run_id, text, name)

    def register(self, name: str, logged: LoggedModel, card: str, tags: dict[str, str]) -> str:
        """A new registered version of ``name`` with the model card as its description."""
        self._activate()
        assert logged.model_uri is not None, "a baseline's run has no model to register"
        version = mlflow.register_model(logged.model_uri, name, tags=tags)
        self.client.update_model_version(name, version.version, description=card)
        return str(version.version)

    def rollback(
        self, name: str, to: str | None, reason: str, who: str, shadow: bool = False
    ) -> AliasMove:
        """alias_history.rollback of the champion, under the promotion lock, the version
        checked to load before the alias moves; with ``shadow``, the version rolled back
        from becomes the challenger (scored beside the champion, to prove itself again)."""

        def challenger_follows(move: AliasMove) -> None:
            if current_version(self.client, name, CHALLENGER_ALIAS) == move.to_version:
                # The challenger is the champion now: nothing is left to shadow it with.
                remove_alias(self.client, name, CHALLENGER_ALIAS, "promoted", who, "rolled back to")
            if shadow and move.from_version:
                why = f"rolled back from, kept in the shadow: {reason}"
                move_alias(
                    self.client, name, CHALLENGER_ALIAS, move.from_version, "challenger", who, why
                )

        with self.promotion_lock(name):
            return rollback(
                self.client,
                name,
                CHAMPION_ALIAS,
                to,
                reason,
                who,
                lambda version: self.load_version(name, version),
                PROMOTED_TAG,
                challenger_follows,
            )

    def set_champion(
        self,
        name: str,
        version: str,
        who: str = "ml_assets",
        why: str = "",
        action: str = "promotion",
    ) -> None:
        """Point the champion alias at ``version``, the move recorded on the registered model."""
        move_alias(self.client, name, CHAMPION_ALIAS, version, action, who, why or action)

    def pair_id(self, name: str) -> str:
        """Changes whenever the champion or the challenger alias moves (``last_move_id``)."""
        return last_move_id(self.client, name, (CHAMPION_ALIAS, CHALLENGER_ALIAS))

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at, None when none (other registry errors raise)."""
        return current_version(self.client, name, alias)

    def set_alias(
        self, name: str, alias: str, version: str, action: str, who: str, why: str
    ) -> AliasMove:
        """Point any alias (the challenger, say) at ``version``, the move recorded."""
        return move_alias(self.client, name, alias, version, action, who, why)

    def remove_alias(
        self, name: str, alias: str, action: str, who: str, why: str, expected: str | None = None
    ) -> AliasMove | None:
        """Remove ``alias`` (only from ``expected``, if given), the move recorded; None when it
        pointed nowhere (or elsewhere)."""
        return remove_alias(self.client, name, alias, action, who, why, expected)

    def end_orphan_runs(self, experiment: str, finished: Callable[[str, float], bool]) -> list[str]:
        """MLflow runs of ``experiment`` still RUNNING whose Dagster run has ended
        (``finished(dagster_run_id, started_epoch_s)``): a killed job's. They are ended
        KILLED; their ids."""
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        ended = []
        for run in self.client.search_runs(
            [exp.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
        ):
            owner = run.data.tags.get("dagster_run_id")
            if owner and finished(owner, run.info.start_time / 1000):
                self.client.set_tag(
                    run.info.run_id, "ended_by", f"a later run: Dagster run {owner} had ended"
                )
                self.client.set_terminated(run.info.run_id, status="KILLED")
                ended.append(run.info.run_id)
        return ended

    def promotion_lock(self, name: str) -> contextlib.AbstractContextManager[object]:
        """Held while a promotion reads the champion, compares and moves the alias, so two
        processes promoting ``name`` at once take turns: a file lock beside a local SQLite
        store. With a tracking server the processes may be on different machines: there the
        Dagster instance's one-slot pool for the promotion step serializes them."""
        if self.tracking_uri.startswith("sqlite:///"):
            db = self.tracking_uri.removeprefix("sqlite:///")
            return FileLock(f"{db}.{name}.promotion.lock")
        return contextlib.nullcontext()

    def version_of_run(self, name: str, run_id: str) -> str | None:
        """The version of ``name`` already registered from ``run_id``, if any."""
        found = self.client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
        return str(min(int(v.version) for v in found)) if found else None

    def resolve_pending(self, name: str) -> list[str]:
        """Versions a killed run left tagged promoted=pending: the one holding the alias was
        promoted, the others were not (their gate never finished). The versions resolved."""
        champion = self.champion_version(name)
        resolved = []
        for mv in self.client.search_model_versions(f"name='{name}'"):
            if mv.tags.get(PROMOTED_TAG) != "pending":
                continue
            promoted = champion is not None and champion[0] == str(mv.version)
            self.client.set_model_version_tag(name, mv.version, PROMOTED_TAG, str(promoted))
            if not promoted:
                self.client.set_model_version_tag(
                    name,
                    mv.version,
                    GATE_REASONS_TAG,
                    "the run that registered it ended before its promotion finished",
                )
            resolved.append(str(mv.version))
        return sorted(resolved, key=int)

    def champion_version(self, name: str) -> tuple[str, str] | None:
        """(version, run_id) of the current champion, or None when there is none. Any other
        registry error raises: a tracking server that does not answer is not "no champion"
        (the gate would compare against nothing and promote)."""
        try:
            mv = self.client.get_model_version_by_alias(name, CHAMPION_ALIAS)
        except MlflowException as exc:
            if exc.error_code in NOT_FOUND:
                return None
            raise
        return str(mv.version), str(mv.run_id)

    def load_champion(self, name: str) -> ChampionRef | None:
        """The model behind ``models:/<name>@champion``, loaded through the registry.

        Raises ChampionLoadError when a champion exists but cannot be loaded (e.g. it was
        pickled by code that no longer matches), so callers can block promotion with a reason.
        """
        ref = self.champion_version(name)
        if ref is None:
            return None
        # By number, not the alias again: a rollback in between would score with one version
        # and label the rows with another.
        return ChampionRef(ref[0], ref[1], self._load(f"models:/{name}/{ref[0]}", ref[0]))

    def load_version(self, name: str, version: str) -> ChampionRef:
        """A registered version by number (e.g. the one that scored a day's rows)."""
        try:
            mv = self.client.get_model_version(name, version)
        except MlflowException as exc:
            raise ChampionLoadError(version, f"no such registered version ({exc})") from exc
        model = self._load(f"models:/{name}/{version}", version)
        return ChampionRef(version, str(mv.run_id), model)

    def _load(self, uri: str, version: str) -> Model:
        self._activate()
        try:
            return mlflow.pyfunc.load_model(uri).unwrap_python_model().model
        except (MlflowException, AttributeError, ImportError, TypeError, ValueError) as exc:
            raise ChampionLoadError(version, f"{type(exc).__name__}: {exc}") from exc

    def log_monitoring(
        self,
        experiment: str,
        name: str,
        metrics: dict[str, float],
        tags: dict[str, str],
        files: dict[str, str],
    ) -> tuple[str, str]:
        """A finished run in the monitoring experiment ``experiment`` (one per scored day):
        its numbers as metrics, its page as an artifact; (experiment id, run id)."""
        exp_id = self.experiment_id(experiment)
        run = self.client.create_run(exp_id, run_name=name, tags=tags)
        run_id = run.info.run_id
        for key, value in metrics.items():
            self.client.log_metric(run_id, key, value)
        for path, text in files.items():
            self.client.log_text(run_id, text, path)
        self.client.set_terminated(run_id)
        return exp_id, run_id

    def run_url(self, ui_url: str, experiment_id: str, run_id: str) -> str:
        return f"{_run_page(ui_url, experiment_id, run_id)}{MODEL_TRAINING_VIEW}"

    def artifact_url(self, ui_url: str, experiment_id: str, run_id: str, path: str) -> str:
        """The MLflow UI's artifact view of ``path`` in the run (it renders HTML pages)."""
        page = _run_page(ui_url, experiment_id, run_id)
        return f"{page}/artifactPath/{path}{MODEL_TRAINING_VIEW}"


# The MLflow UI shows a page in its model-training view (not the GenAI one, its default) when
# the URL asks for it.
MODEL_TRAINING_VIEW = "?workflowType=machine_learning"


def _run_page(ui_url: str, experiment_id: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def _flat_params(model: Model) -> dict[str, str]:
    params = {"model_name": model.name, "family": model.family, "threshold": model.threshold}
    params |= {k: v for k, v in model.params.items()}
    if isinstance(model, ConstantModel):  # a baseline's run has no model: its value is here
        params["value"] = model.value
    return {k: str(v)[:500] for k, v in params.items()}
