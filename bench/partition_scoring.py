"""One large daily partition scored through the champion alias, against raw Booster.predict.

On fresh stores: a user spec ``score_bench``, the built-in churn spec with LightGBM as its only
candidate (so that the champion is a booster to compare with), gets 14 days of the churn
stream and is trained (``dagster job execute -j train_score_bench``); then one incoming day of
``--rows`` rows is written and ``score_bench/predictions`` is materialized for that day with
``dagster asset materialize`` (reads the file, loads ``models:/score_bench@champion`` from the
registry, encodes, predicts, writes the scored partition). The raw reference is
``Booster.predict`` of the same champion on the same rows, already encoded as numpy, in this
process.

The step scores a batch this large with the champion compiled by lleaves (``lib/compiled.py``):
the first repeat compiles it into a fresh cache, the others load it. With ``--learning-rate``
the champion is one fixed-setting LightGBM at that learning rate (up to ``--rounds`` trees)
instead of churn's searched one, to see how the ratio moves with the model's size.

Run: .venv/bin/python bench/partition_scoring.py [--rows 10000000] [--repeats 3]
     [--learning-rate 0.02 --rounds 300]
Prints each repeat's step time and how it predicted, then the step's and the command's time and
rows/s next to the raw booster's and to the same work written by hand (read the file, encode,
Booster.predict, write the scores), as medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import ROOT, run_measured, step_seconds  # noqa: E402

DAY_INDEX = 14  # the first day after the 14 training days
SPEC_NAME = "score_bench"


def write_spec(directory: Path, learning_rate: float | None, rounds: int) -> None:
    import yaml

    spec = yaml.safe_load((ROOT / "ml_assets" / "specs" / "churn.yaml").read_text())
    lightgbm = spec["candidates"]["lightgbm"]
    if learning_rate is not None:
        lightgbm = {
            "budget": 1,
            "search": {},
            "num_boost_round": rounds,
            "params": {"learning_rate": learning_rate},
        }
    spec |= {"name": SPEC_NAME, "candidates": {"lightgbm": lightgbm}}
    directory.mkdir(parents=True)
    (directory / f"{SPEC_NAME}.yaml").write_text(yaml.safe_dump(spec))


def write_day(path: Path, rows: int) -> None:
    import polars as pl

    from ml_assets.lib.churn import ChurnStream

    block = 1_000_000
    parts = []
    for start in range(0, rows, block):
        n = min(block, rows - start)
        stream = ChurnStream(customers_per_day=n, seed=100 + start // block)
        parts.append(stream.generate(DAY_INDEX))
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.concat(parts).write_parquet(path)


def reference_seconds(stores: Path, day_file: Path, repeats: int) -> tuple[float, float, int]:
    """Median seconds of Booster.predict on the already encoded rows, of the same work by
    hand (read the file, encode, predict, write the scores), and the champion's tree count."""
    import polars as pl

    from ml_assets.lib.tracking import Tracker

    ref = Tracker(f"sqlite:///{stores / 'mlflow.db'}").load_champion(SPEC_NAME)
    assert ref is not None, f"{SPEC_NAME} has no champion"
    booster, prep = ref.model.booster, ref.model.prep
    encoded = prep.codes(pl.read_parquet(day_file))
    raw, by_hand = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        booster.predict(encoded)
        raw.append(time.perf_counter() - start)
        start = time.perf_counter()
        rows = pl.read_parquet(day_file)
        scores = booster.predict(prep.codes(rows))
        rows.with_columns(pl.Series("score", scores)).write_parquet(day_file.with_suffix(".out"))
        by_hand.append(time.perf_counter() - start)
    return statistics.median(raw), statistics.median(by_hand), booster.num_trees()


def predictor(home: Path) -> str:
    """How the last materialization of the predictions asset scored its rows."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey([SPEC_NAME, "predictions"]))
    assert event is not None and event.asset_materialization is not None
    return str(event.asset_materialization.metadata["predictor"].value)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    out = sys.stdout
    stores = Path(tempfile.mkdtemp(prefix="ml_assets_score_"))
    home = stores / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{stores / 'mlflow.db'}",
        "ML_ASSETS_MLFLOW_ARTIFACTS": (stores / "mlartifacts").as_uri(),
        "ML_ASSETS_DATA_DIR": str(stores / "data"),
        "ML_ASSETS_HOME": str(ROOT),
        "ML_ASSETS_COMPILED_CACHE": str(stores / "compiled"),  # fresh: the first repeat compiles
    }
    write_spec(stores / "specs", args.learning_rate, args.rounds)
    env["ML_ASSETS_SPECS"] = str(stores / "specs")
    python = sys.executable
    dagster = str(Path(python).with_name("dagster"))
    module = ["-m", "ml_assets.definitions"]
    stream = [python, "-m", "ml_assets.cli", "stream", "--spec", SPEC_NAME, "--days", "14"]
    run_measured(stream, env)
    run_measured([dagster, "job", "execute", *module, "-j", f"train_{SPEC_NAME}"], env)
    from ml_assets.lib.churn import ChurnStream

    day = ChurnStream().day(DAY_INDEX).isoformat()
    day_file = stores / "data" / SPEC_NAME / "incoming" / f"{day}.parquet"
    write_day(day_file, args.rows)
    command = [dagster, "asset", "materialize", *module, "--select", f"{SPEC_NAME}/predictions"]
    command += ["--partition", day]
    steps, commands = [], []
    for repeat in range(1, args.repeats + 1):
        commands.append(run_measured(command, env).seconds)
        timings, _ = step_seconds(home)
        steps.append(next(end - start for k, (start, end) in timings.items() if "predictions" in k))
        out.write(f"repeat {repeat}: step {steps[-1]:.1f} s, predictor: {predictor(home)}\n")
    raw, by_hand, trees = reference_seconds(stores, day_file, args.repeats)
    step, cmd = statistics.median(steps), statistics.median(commands)
    out.write(
        f"rows={args.rows:,} trees={trees} repeats={args.repeats} cores={os.cpu_count()} "
        "(medians)\n"
    )
    for name, seconds in [
        ("raw Booster.predict (encoded numpy)", raw),
        ("by hand: read, encode, Booster.predict, write", by_hand),
        (f"{SPEC_NAME}/predictions step (file to scored partition)", step),
        ("dagster asset materialize (whole command)", cmd),
    ]:
        out.write(
            f"{name:52s} {seconds:7.1f} s  {args.rows / seconds:11,.0f} rows/s  "
            f"x{raw / seconds:5.2f} of raw rows/s\n"
        )
    shutil.rmtree(stores)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
