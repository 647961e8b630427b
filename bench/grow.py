"""A spec trained on a small table, then retrained on a much larger one of the same
distribution: the learned contract must tolerate the rare values the larger table holds
outside the first one's ranges (a warning), not block the retraining.

Writes two seeded synthetic tables (``bench/synthetic.py``, different seeds), declares the
scale benchmark's user spec over one source file, runs ``dagster job execute`` on the first
table, replaces the file with the second and runs again on the same stores. Prints, for each
run, whether it succeeded, every data-contract check's outcome and its warnings.

Run: .venv/bin/python bench/grow.py [--first 200000] [--then 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polars as pl  # noqa: E402
import scale  # noqa: E402
import synthetic  # noqa: E402

OUTLIER_COLUMNS = ("x00", "x09")


def contract_checks(dagster_home: Path) -> list[tuple[str, bool, str, str]]:
    """(check, passed, description, warnings) of the last run's data-contract checks."""
    from dagster import DagsterEventType, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    found = []
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        run = instance.get_runs(limit=1)[0]
        for record in instance.all_logs(
            run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ):
            data = record.dagster_event.event_specific_data  # type: ignore[union-attr]
            if "contract" not in data.check_name:
                continue
            warnings = data.metadata.get("warnings")
            found.append(
                (
                    f"{data.asset_key.to_user_string()}:{data.check_name}",
                    data.passed,
                    (data.description or "").splitlines()[0][:160],
                    str(warnings.value) if warnings is not None else "",
                )
            )
    return found


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--first", type=int, default=200_000)
    parser.add_argument("--then", type=int, default=1_000_000)
    parser.add_argument("--outliers", type=int, default=1, help="rows per column, second table")
    parser.add_argument("--data-dir", default=str(scale.ROOT / ".bench"))
    args = parser.parse_args()
    data = Path(args.data_dir)
    first = data / f"synthetic_{args.first}_seed7.parquet"
    then = data / f"synthetic_{args.then}_seed8.parquet"
    for path, rows, seed in ((first, args.first, 7), (then, args.then, 8)):
        if not path.exists():
            synthetic.write(path, rows, seed=seed)
    work = Path(tempfile.mkdtemp(prefix="ml_assets_grow_"))
    specs = work / "specs"
    specs.mkdir()
    source = work / "source.parquet"
    (specs / f"{scale.SPEC_NAME}.yaml").write_text(
        scale.SPEC.format(name=scale.SPEC_NAME, path=source, budget=1, search="{}")
    )
    stores = work / "stores"
    env = scale.job_env(stores, specs)
    cmd = [str(Path(sys.executable).with_name("dagster")), "job", "execute"]
    cmd += ["-m", "ml_assets.definitions", "-j", f"train_{scale.SPEC_NAME}"]
    failed = False
    for label, table, rows in (("first", first, args.first), ("then", then, args.then)):
        shutil.copyfile(table, source)
        if label == "then" and args.outliers:
            frame = pl.read_parquet(source)
            far = pl.int_range(pl.len()) < args.outliers
            frame.with_columns(
                [pl.when(far).then(100.0).otherwise(pl.col(c)).alias(c) for c in OUTLIER_COLUMNS]
            ).write_parquet(source)
            say(f"set {args.outliers} row(s) of {', '.join(OUTLIER_COLUMNS)} to 100.0")
        try:
            measured = scale.run_measured(cmd, env)
            outcome = f"succeeded in {measured.seconds:.1f} s"
        except RuntimeError as exc:
            outcome, failed = f"FAILED: {str(exc).splitlines()[0]}", True
        say(f"{label} run on {rows:,} rows: {outcome}")
        for name, passed, description, warnings in contract_checks(stores / "dagster_home"):
            say(f"  {name}: {'passed' if passed else 'FAILED'} - {description}")
            if warnings and warnings != "none":
                say("    warnings:\n" + "\n".join(f"      {w}" for w in warnings.splitlines()))
    shutil.rmtree(work)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
