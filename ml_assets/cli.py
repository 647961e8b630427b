"""Command line helpers.

``python -m ml_assets.cli summary``   the per-spec outcome (champion or why not)
``python -m ml_assets.cli stream``    write days of the synthetic churn stream into data/
``python -m ml_assets.cli simulate``  let days arrive: score, monitor, retrain on drift
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mlflow import MlflowClient

from ml_assets.defs.resources import ArtifactStore, default_data_dir, default_tracking_uri
from ml_assets.lib import names
from ml_assets.lib.churn import ChurnStream
from ml_assets.lib.data import day_files
from ml_assets.lib.spec import MLSpec, discover_specs
from ml_assets.lib.tracking import CHAMPION_ALIAS, Tracker


def spec_summary(spec: MLSpec, tracker: Tracker) -> list[str]:
    """Lines describing the latest registered candidate of ``spec`` and the champion."""
    client: MlflowClient = tracker.client
    versions = client.search_model_versions(f"name='{spec.name}'")
    if not versions:
        return [
            f"{spec.name}: no registered version yet; run `dagster job execute -m "
            f"ml_assets.definitions -j {names.train_job(spec.name)}`"
        ]
    latest = max(versions, key=lambda v: int(v.version))
    run = client.get_run(latest.run_id)
    m, tags, p = run.data.metrics, run.data.tags, spec.primary_metric
    champion = tracker.champion_version(spec.name)
    if tags.get(names.PROMOTED_TAG) == "True":
        model = tags.get(names.MODEL_NAME_TAG)
        head = f"{spec.name}: CHAMPION is v{latest.version} ({model}), promoted"
    else:
        stays = f"champion stays v{champion[0]}" if champion else "there is no champion"
        head = (
            f"{spec.name}: v{latest.version} ({tags.get(names.MODEL_NAME_TAG)}) NOT PROMOTED, "
            f"{stays}. Why: {tags.get(names.GATE_REASONS_TAG, 'gate not applied')}"
        )
    lines = [
        head,
        f"  test {p}: {m.get(f'test_{p}', float('nan')):.4f} "
        f"{spec.evaluation.confidence:.0%} CI "
        f"[{m.get(f'test_{p}_ci_lower', float('nan')):.4f}, "
        f"{m.get(f'test_{p}_ci_upper', float('nan')):.4f}]",
        f"  best baseline ({tags.get(names.BEST_BASELINE_TAG)}) test {p}: "
        f"{m.get(f'baseline_test_{p}', float('nan')):.4f}",
        f"  report: {tags.get(names.REPORT_PATH_TAG)}",
        f"  registry: {f'models:/{spec.name}@{CHAMPION_ALIAS}' if champion else 'no champion'}; "
        f"data {tags.get(names.DATA_FINGERPRINT_TAG)}, code {tags.get(names.CODE_VERSION_TAG)}",
    ]
    forecast = Path(default_data_dir()) / spec.name / "forecast.parquet"
    if spec.task == "forecasting" and forecast.exists():
        lines.append(f"  next {spec.forecast.horizon if spec.forecast else ''} periods: {forecast}")
    return lines


def _incoming_dir(spec_name: str) -> Path:
    specs = {s.name: s for s in discover_specs(os.environ.get("ML_ASSETS_SPECS"))}
    spec = specs.get(spec_name)
    if spec is None or spec.monitoring is None:
        raise SystemExit(f"spec '{spec_name}' does not exist or has no 'monitoring' section")
    store = ArtifactStore(base_dir=default_data_dir())
    return Path(store.incoming_dir(spec.name, spec.monitoring.incoming))


def _stream(args: argparse.Namespace) -> ChurnStream:
    return ChurnStream(
        customers_per_day=args.customers,
        seed=args.seed,
        drift_day=args.drift_day if args.drift_day >= 0 else None,
    )


def stream_command(args: argparse.Namespace) -> int:
    """Write days [0, --days) of the stream; --restart first removes the folder's day files."""
    incoming = _incoming_dir(args.spec)
    if args.restart:
        for old in day_files(incoming).values():
            old.unlink()
    paths = _stream(args).write(incoming, range(args.days))
    sys.stdout.write(f"wrote {len(paths)} daily files to {incoming} ({paths[0].stem} ..)\n")
    return 0


def simulate_command(args: argparse.Namespace) -> int:
    """Days [--from-day, --to-day) arrive one by one through the real job, sensor and schedule."""
    from dagster import DagsterInstance

    from ml_assets.definitions import defs
    from ml_assets.defs.simulation import simulate

    out = simulate(
        defs,
        DagsterInstance.get(),
        _stream(args),
        _incoming_dir(args.spec),
        range(args.from_day, args.to_day),
        spec=args.spec,
        weekly_retrain=not args.no_weekly,
        say=lambda line: sys.stdout.write(line + "\n"),
        log_level="WARNING",
    )
    sys.stdout.write(
        f"{len(out.requests)} drift retraining run(s) requested over "
        f"{args.to_day - args.from_day} days\n"
    )
    return 0


def summary_command(args: argparse.Namespace) -> int:
    tracker = Tracker(default_tracking_uri())
    for spec in discover_specs(os.environ.get("ML_ASSETS_SPECS")):
        sys.stdout.write("\n".join(spec_summary(spec, tracker)) + "\n")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of days")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml_assets.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("summary", help="per spec: champion or NOT PROMOTED and why")
    for name, text in (
        ("stream", "write days [0, --days) of the synthetic churn stream"),
        ("simulate", "let days [--from-day, --to-day) arrive: score, monitor, retrain"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--spec", default="churn")
        sub.add_argument("--customers", type=int, default=1000, help="rows per day")
        sub.add_argument("--seed", type=int, default=7)
        sub.add_argument("--drift-day", type=int, default=20, help="first drifted day; -1: none")
    stream = commands.choices["stream"]
    stream.add_argument("--days", type=_positive, default=14)
    stream.add_argument("--restart", action="store_true", help="remove existing day files first")
    simulate = commands.choices["simulate"]
    simulate.add_argument("--from-day", type=int, default=14)
    simulate.add_argument("--to-day", type=int, default=30)
    simulate.add_argument("--no-weekly", action="store_true", help="skip the weekly retrain")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"summary": summary_command, "stream": stream_command, "simulate": simulate_command}
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
