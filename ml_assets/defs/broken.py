"""A spec file that does not load: reported in the UI and the CLI, while every other spec
loads. Its asset (group ``broken_specs``) carries the error as its description, and its job
``train_<file stem>`` fails with that error, so running it says what to fix."""

import re
import warnings
from pathlib import Path

import dagster as dg

from ml_assets.lib import names
from ml_assets.lib.spec import SpecError


class BrokenSpecWarning(UserWarning):
    """A spec file was left out of the definitions."""


def broken_spec_defs(path: Path, error: Exception, taken: set[str]) -> dg.Definitions:
    """The asset and job that report ``error`` for ``path``. ``taken`` holds the job names and
    asset keys in use; the ones made here are added to it."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", path.stem) or "spec"
    n = 0
    while (job_name := names.train_job(stem + (f"_{n}" if n else ""))) in taken or (
        f"broken_specs/{stem}{f'_{n}' if n else ''}" in taken
    ):
        n += 1
    stem = stem + (f"_{n}" if n else "")
    taken |= {job_name, f"broken_specs/{stem}"}
    message = str(error)
    text = f"ml_assets left out spec file {path}, which does not load: {message}"
    warnings.warn(text, BrokenSpecWarning, stacklevel=1)
    # Dagster's CLI and `dagster dev` print their own logger's records while they load code.
    dg.get_dagster_logger("ml_assets").error(text)

    @dg.asset(
        key=dg.AssetKey(["broken_specs", stem]),
        group_name="broken_specs",
        description=f"NOT LOADED: {message}",
    )
    def spec_error() -> None:
        raise SpecError(message)

    job = dg.define_asset_job(
        job_name,
        selection=dg.AssetSelection.assets(spec_error),
        description=f"Spec file {path} does not load: {message}",
    )
    return dg.Definitions(assets=[spec_error], jobs=[job])
