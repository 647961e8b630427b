"""Resources and the parquet IO manager, with local defaults that need nothing running."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from upath import UPath

import ml_assets
from ml_assets.lib.data import SPLIT
from ml_assets.lib.storage import (  # noqa: F401 (defs use write_text_atomic from here)
    is_local,
    storage_path,
    write_atomic,
    write_text_atomic,
)
from ml_assets.lib.tracking import Tracker

SPLITS_METADATA_KEY = "splits"
# Input metadata {"schema_only": True}: the stored frame's columns and types, no rows.
SCHEMA_ONLY_METADATA_KEY = "schema_only"
MAY_BE_EMPTY_METADATA_KEY = "may_be_empty"


def project_home() -> Path:
    """ML_ASSETS_HOME, else the checkout holding pyproject.toml, else the working directory."""
    if env := os.environ.get("ML_ASSETS_HOME"):
        return Path(env).expanduser().resolve()
    root = Path(ml_assets.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").exists() else Path.cwd()


def default_data_dir() -> str:
    return os.environ.get("ML_ASSETS_DATA_DIR", str(project_home() / "data"))


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{project_home() / 'mlflow.db'}")


# Tracking URIs of a server, which decides where artifacts go (e.g. its --artifacts-destination).
TRACKING_SERVER_SCHEMES = ("http://", "https://", "databricks")


def default_artifact_root() -> str | None:
    """Where new experiments keep their artifacts: ML_ASSETS_MLFLOW_ARTIFACTS (any URI MLflow
    writes to, e.g. s3://...) if set; else the tracking server's own choice; else, with a
    database store (SQLite, PostgreSQL, ...), <project>/mlartifacts, never MLflow's ./mlruns
    relative to whatever directory a process started in."""
    if explicit := os.environ.get("ML_ASSETS_MLFLOW_ARTIFACTS"):
        return explicit
    if default_tracking_uri().startswith(TRACKING_SERVER_SCHEMES):
        return None
    return (project_home() / "mlartifacts").as_uri()


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking server and model registry (a local SQLite file by default)."""

    tracking_uri: str
    artifact_root: str | None = None
    ui_url: str = "http://127.0.0.1:5000"
    # Where MLflow runs link back to the Dagster run that trained them.
    dagster_ui_url: str = "http://127.0.0.1:3000"

    def tracker(self) -> Tracker:
        return Tracker(self.tracking_uri, self.artifact_root)


class ArtifactStore(dg.ConfigurableResource):
    """Where learned data contracts and HTML reports live (local dir or any fsspec URL)."""

    base_dir: str

    def contract_path(self, spec_name: str) -> UPath:
        return storage_path(self.base_dir) / spec_name / "data_contract.json"

    def incoming_dir(self, spec_name: str, folder: str) -> UPath:
        return storage_path(self.base_dir) / spec_name / folder

    def incoming_path(self, spec_name: str, folder: str, day: str) -> UPath:
        return self.incoming_dir(spec_name, folder) / f"{day}.parquet"

    def drift_plot_path(self, spec_name: str, day: str) -> UPath:
        return storage_path(self.base_dir) / spec_name / "drift" / f"drift_{day}.html"

    def report_path(self, spec_name: str, run_id: str) -> UPath:
        return (
            storage_path(self.base_dir) / spec_name / "reports" / f"evaluation_report_{run_id}.html"
        )


class PolarsParquetIOManager(dg.ConfigurableIOManager):
    """polars frames as parquet, other values (fitted models, reports) pickled.

    An input may carry metadata ``{"splits": [...]}``: only rows whose ``__split`` is listed are
    read, so an asset that must not see the test split never loads it. With
    ``{"schema_only": True}`` the input is an empty frame of the stored columns and types, for a
    step that needs only those (read from the parquet footer, whatever the row count).
    A partitioned input reads the partitions that were written; when none was, it is an
    error unless the input carries ``{"may_be_empty": True}`` (an optional upstream output).
    """

    base_dir: str

    def _path(self, key: dg.AssetKey, suffix: str, partition: str | None = None) -> UPath:
        if partition is not None:  # one file per partition: <key>/<partition><suffix>
            return storage_path(self.base_dir).joinpath(*key.path, f"{partition}{suffix}")
        return storage_path(self.base_dir).joinpath(*key.path).with_suffix(suffix)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        is_frame = isinstance(obj, pl.DataFrame)
        partition = context.partition_key if context.has_partition_key else None
        path = self._path(context.asset_key, ".parquet" if is_frame else ".pkl", partition)
        if is_frame:
            write_atomic(path, obj.write_parquet)
        else:
            write_atomic(path, lambda fh: pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL))
        meta: dict[str, Any] = {"path": dg.MetadataValue.path(str(path))}
        if is_frame:
            meta |= {"rows": obj.height, "columns": obj.width}
        context.add_output_metadata(meta)

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        if context.has_asset_partitions:
            parts = [self._path(key, ".parquet", p) for p in context.asset_partition_keys]
            found = [_read_parquet(p, None) for p in parts if p.exists()]
            if found:
                return pl.concat(found, how="diagonal_relaxed")
            if (context.definition_metadata or {}).get(MAY_BE_EMPTY_METADATA_KEY):
                return pl.DataFrame()
            raise FileNotFoundError(
                f"no stored partition of asset {key.to_user_string()} under {self.base_dir} "
                f"for {', '.join(context.asset_partition_keys)}; materialize it first"
            )
        parquet = self._path(key, ".parquet")
        if parquet.exists():
            metadata = context.definition_metadata or {}
            if metadata.get(SCHEMA_ONLY_METADATA_KEY):
                return _read_schema(parquet)
            return _read_parquet(parquet, metadata.get(SPLITS_METADATA_KEY))
        pkl = self._path(key, ".pkl")
        if not pkl.exists():
            raise FileNotFoundError(
                f"no stored value for asset {key.to_user_string()} under {self.base_dir}; "
                "materialize it first"
            )
        with pkl.open("rb") as fh:
            return pickle.load(fh)


def _read_schema(path: UPath) -> pl.DataFrame:
    with path.open("rb") as fh:
        return pl.DataFrame(schema=pl.read_parquet_schema(fh))


def _read_parquet(path: UPath, splits: list[str] | None) -> pl.DataFrame:
    """Read a stored frame, keeping only the listed splits when asked."""
    if is_local(path):
        scan = pl.scan_parquet(str(path))
        # The filter is pushed into the parquet scan: rows of other splits are never read.
        return (scan.filter(pl.col(SPLIT).is_in(splits)) if splits else scan).collect()
    with path.open("rb") as fh:  # any fsspec filesystem (s3, gcs, memory, ...)
        frame = pl.read_parquet(fh)
    return frame.filter(pl.col(SPLIT).is_in(splits)) if splits else frame
