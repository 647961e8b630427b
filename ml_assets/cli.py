"""Command line helpers.

``python -m ml_assets.cli summary``   the per-spec outcome (champion or why not)
``python -m ml_assets.cli stream``    write days of the synthetic churn stream into data/
                                      (``--next``: the day after the newest file)
``python -m ml_assets.cli simulate``  let days arrive: score, monitor, retrain on drift
``python -m ml_assets.cli score``     score a CSV or Parquet file with models:/<spec>@champion
``python -m ml_assets.cli rollback``  move the champion back (``--keep-as-challenger``)
``python -m ml_assets.cli challenger`` score a version in the champion's shadow every day
``python -m ml_assets.cli history``   every recorded move of a spec's aliases

The stream's day 0 is its earliest file in the incoming folder; a new stream (``--restart``)
starts ``DEMO_DAYS`` days before today, so the demo's days end yesterday and today's file is
the next to arrive, for the daemon under ``make ui`` to score.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from upath import UPath

from ml_assets.alias_commands import (
    challenger_command,
    history_command,
    rollback_command,
    spec_named,
)
from ml_assets.defs.resources import ArtifactStore, default_data_dir, default_tracking_uri
from ml_assets.lib.churn import ChurnStream
from ml_assets.lib.data import day_files
from ml_assets.lib.spec import load_all_specs
from ml_assets.lib.tracking import CHAMPION_ALIAS, Tracker
from ml_assets.summary import spec_summary, summary_command  # noqa: F401 (tests import it here)


def _incoming_dir(spec_name: str) -> UPath:
    specs = {s.name: s for s in load_all_specs(os.environ.get("ML_ASSETS_SPECS")).specs}
    spec = specs.get(spec_name)
    if spec is None or spec.monitoring is None:
        raise SystemExit(f"spec '{spec_name}' does not exist or has no 'monitoring' section")
    store = ArtifactStore(base_dir=default_data_dir())
    return store.incoming_dir(spec.name, spec.monitoring.incoming)


DEMO_DAYS = 36  # make demo: 14 days to train on, then 16 arriving, then 6 in the drill


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _stream(args: argparse.Namespace, start: dt.date) -> ChurnStream:
    return ChurnStream(
        start=start,
        customers_per_day=args.customers,
        seed=args.seed,
        drift_day=args.drift_day if args.drift_day >= 0 else None,
    )


def _existing_start(incoming: UPath) -> dt.date:
    files = day_files(incoming)
    if not files:
        raise SystemExit(
            f"no daily files in {incoming}: write the stream first, e.g. "
            "`python -m ml_assets.cli stream --days 14 --restart`"
        )
    return next(iter(files))


def _not_after_today(stream: ChurnStream, index: int) -> None:
    if stream.day(index) > _today():
        raise SystemExit(
            f"day {index} of the stream is {stream.day(index)}, after today ({_today()}): its "
            "daily partition does not exist until then; the stream is written up to today"
        )


def stream_command(args: argparse.Namespace) -> int:
    """Write days [0, --days) of the stream, or with --next the day after the newest file;
    --restart first removes the folder's day files."""
    incoming = _incoming_dir(args.spec)
    if args.restart:
        for old in day_files(incoming).values():
            old.unlink()
    existing = day_files(incoming)
    if args.next:
        start = _existing_start(incoming)
        index = (max(existing) - start).days + 1
        days = range(index, index + 1)
    else:
        start = args.start or (
            next(iter(existing)) if existing else _today() - dt.timedelta(days=DEMO_DAYS)
        )
        days = range(args.days)
    stream = _stream(args, start)
    _not_after_today(stream, days[-1])
    paths = stream.write(incoming, days)
    drifted = " (drifted)" if stream.drifted(days[-1]) else ""
    sys.stdout.write(
        f"wrote {len(paths)} daily file(s) to {incoming}: {paths[0].stem} .. {paths[-1].stem}"
        f"{drifted}\n"
    )
    return 0


def simulate_command(args: argparse.Namespace) -> int:
    """Days [--from-day, --to-day) arrive one by one through the real job, sensor and schedule."""
    from dagster import DagsterInstance

    from ml_assets.definitions import defs
    from ml_assets.defs.simulation import simulate

    incoming = _incoming_dir(args.spec)
    stream = _stream(args, _existing_start(incoming))
    _not_after_today(stream, args.to_day - 1)
    out = simulate(
        defs,
        DagsterInstance.get(),
        stream,
        incoming,
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


def score_command(args: argparse.Namespace) -> int:
    """Rows of a file scored by the spec's registered champion (the alias, as the daily
    scoring does), written to --output: the rows with the score columns and model version."""
    import polars as pl

    from ml_assets.lib import data as data_lib
    from ml_assets.lib.tasks import task_for

    spec = spec_named(args.spec)
    if spec is None:
        return 2
    source = Path(args.input)
    if not source.exists():
        sys.stderr.write(f"input file {source} does not exist\n")
        return 2
    frame = pl.read_csv(source) if source.suffix.lower() == ".csv" else pl.read_parquet(source)
    ref = Tracker(default_tracking_uri()).load_champion(spec.name)
    if ref is None:
        sys.stderr.write(
            f"'{spec.name}' has no champion to score with; run job train_{spec.name} first\n"
        )
        return 1
    rows = data_lib.derive_inputs(spec, frame)
    missing = [c for c in ref.model.features if c not in rows.columns]
    if missing:
        sys.stderr.write(
            f"{source} lacks column(s) {missing} that champion v{ref.version} of "
            f"'{spec.name}' reads; its inputs are {ref.model.features}\n"
        )
        return 2
    scored = task_for(spec).score(spec, ref.model, ref.version, rows)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".csv":
        scored.write_csv(output)
    else:
        scored.write_parquet(output)
    sys.stdout.write(
        f"scored {scored.height} rows of {source} with models:/{spec.name}@{CHAMPION_ALIAS} "
        f"(v{ref.version}) into {output}\n"
    )
    if ref.model.classes is not None:
        counts = scored["predicted_label"].cast(pl.String).value_counts(sort=True)
        shares = ", ".join(f"{k} {n / scored.height:.1%}" for k, n in counts.iter_rows())
        sys.stdout.write(f"predicted classes: {shares}\n")
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
    stream.add_argument(
        "--start",
        type=dt.date.fromisoformat,
        help=f"day 0 (default: the earliest file, or {DEMO_DAYS} days before today)",
    )
    stream.add_argument(
        "--next", action="store_true", help="write only the day after the newest file"
    )
    score = commands.add_parser("score", help="score a file with models:/<spec>@champion")
    score.add_argument("spec")
    score.add_argument("--input", required=True, help="a CSV or Parquet file of rows to score")
    score.add_argument("--output", required=True, help="where to write them (.parquet or .csv)")
    back = commands.add_parser("rollback", help="move models:/<spec>@champion back")
    back.add_argument("spec")
    back.add_argument("--to", type=_positive, help="the version (default: the previous champion)")
    back.add_argument("--reason", required=True, help="why: recorded with the move")
    back.add_argument("--who", help="recorded as who rolled back (default: your user name)")
    back.add_argument(
        "--keep-as-challenger",
        action="store_true",
        help="score the version rolled back from beside the champion (shadow) from now on",
    )
    shadow = commands.add_parser(
        "challenger", help="score a version beside the champion every day (shadow)"
    )
    shadow.add_argument("spec")
    shadow.add_argument("--version", type=_positive, help="the registered version")
    shadow.add_argument("--clear", action="store_true", help="take the challenger out")
    shadow.add_argument("--reason", required=True, help="why: recorded with the move")
    shadow.add_argument("--who", help="recorded as who set it (default: your user name)")
    history = commands.add_parser("history", help="every recorded move of a spec's aliases")
    history.add_argument("spec")
    simulate = commands.choices["simulate"]
    simulate.add_argument("--from-day", type=int, default=14)
    simulate.add_argument("--to-day", type=int, default=30)
    simulate.add_argument("--no-weekly", action="store_true", help="skip the weekly retrain")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "summary": summary_command,
        "stream": stream_command,
        "simulate": simulate_command,
        "score": score_command,
        "rollback": rollback_command,
        "history": history_command,
        "challenger": challenger_command,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
