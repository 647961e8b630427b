"""The CLI's registry commands: `rollback`, `challenger` and `history`, over the champion and
challenger aliases and their recorded moves."""

from __future__ import annotations

import argparse
import os
import sys

from mlflow.exceptions import MlflowException

from ml_assets.defs.resources import default_tracking_uri
from ml_assets.lib.alias_history import (
    RollbackError,
    RollbackIncomplete,
    moves,
    record_problem,
)
from ml_assets.lib.spec import MLSpec, load_all_specs
from ml_assets.lib.tracking import CHALLENGER_ALIAS, CHAMPION_ALIAS, ChampionLoadError, Tracker


def spec_named(name: str) -> MLSpec | None:
    found = load_all_specs(os.environ.get("ML_ASSETS_SPECS"))
    spec = next((s for s in found.specs if s.name == name), None)
    if spec is None:
        known = sorted(s.name for s in found.specs)
        sys.stderr.write(f"no spec named '{name}'; the specs are {known}\n")
    return spec


def _who(args: argparse.Namespace) -> str:
    return args.who or os.environ.get("USER") or os.environ.get("LOGNAME") or "cli"


def rollback_command(args: argparse.Namespace) -> int:
    """Move the champion alias back (to --to, else to where it was before), recording who,
    when and why; refused when that version's model no longer loads."""
    spec = spec_named(args.spec)
    if spec is None:
        return 2
    if args.keep_as_challenger and spec.monitoring is None:
        sys.stderr.write(
            f"'{spec.name}' has no monitoring section: nothing would score a challenger; "
            "roll back without --keep-as-challenger\n"
        )
        return 2
    tracker = Tracker(default_tracking_uri())
    who = _who(args)
    try:
        move = tracker.rollback(
            spec.name,
            None if args.to is None else str(args.to),
            args.reason,
            who,
            shadow=args.keep_as_challenger,
        )
    except RollbackIncomplete as exc:
        sys.stderr.write(f"rollback of '{spec.name}' done in part: {exc}\n")
        return 1
    except RollbackError as exc:
        sys.stderr.write(f"rollback of '{spec.name}' refused: {exc}\n")
        return 2
    sys.stdout.write(
        f"'{spec.name}' {CHAMPION_ALIAS}: v{move.from_version} -> v{move.to_version} "
        f"(by {move.who} at {move.when}: {move.why}); models:/{spec.name}@{CHAMPION_ALIAS} "
        "and the next scoring run use it\n"
    )
    if args.keep_as_challenger:
        sys.stdout.write(
            f"v{move.from_version} is the {CHALLENGER_ALIAS}: scored beside it every day\n"
        )
    return 0


def challenger_command(args: argparse.Namespace) -> int:
    """Put a registered version in the champion's shadow by hand (or take the challenger out
    with --clear): daily scoring scores it beside the champion, apart, never served."""
    spec = spec_named(args.spec)
    if spec is None:
        return 2
    if spec.monitoring is None:
        sys.stderr.write(f"'{spec.name}' has no monitoring section: nothing scores it daily\n")
        return 2
    who = _who(args)
    problem = record_problem(args.reason, who)
    if problem is not None:
        sys.stderr.write(f"'{spec.name}' {CHALLENGER_ALIAS} not changed: {problem}\n")
        return 2
    if args.clear == (args.version is not None):
        sys.stderr.write("name the version with --version N, or take it out with --clear\n")
        return 2
    tracker = Tracker(default_tracking_uri())
    # As promotions and the shadow's own moves do: one at a time.
    with tracker.promotion_lock(spec.name):
        if args.clear:
            move = tracker.remove_alias(spec.name, CHALLENGER_ALIAS, "retired", who, args.reason)
            said = f"v{move.from_version} is no longer the" if move else "there was no"
            sys.stdout.write(f"'{spec.name}': {said} {CHALLENGER_ALIAS}\n")
            return 0
        version = str(args.version)
        refused = _not_a_challenger(spec, tracker, version)
        if refused is not None:
            sys.stderr.write(f"v{version} of '{spec.name}' cannot be the {CHALLENGER_ALIAS}: ")
            sys.stderr.write(refused + "\n")
            return 2
        move = tracker.set_alias(
            spec.name, CHALLENGER_ALIAS, version, "challenger", who, args.reason
        )
    if move.from_version == version:
        replaced = " (set again: its shadow comparison starts over)"
    else:
        replaced = f" (in place of v{move.from_version})" if move.from_version else ""
    sys.stdout.write(
        f"'{spec.name}' {CHALLENGER_ALIAS}: v{version}{replaced}, scored beside the champion "
        "from the next day"
        + (
            f"; promoted after {spec.monitoring.shadow_days} labelled day(s) if it beats it "
            "(monitoring.shadow_days)\n"
            if spec.monitoring.shadow_days
            else "; monitoring.shadow_days is not set, so it is compared, never promoted\n"
        )
    )
    return 0


def _not_a_challenger(spec: MLSpec, tracker: Tracker, version: str) -> str | None:
    """Why ``version`` cannot shadow the champion (None: it can)."""
    known = sorted(
        (str(v.version) for v in tracker.client.search_model_versions(f"name='{spec.name}'")),
        key=int,
    )
    if version not in known:
        return f"there is no such version; the registered versions are {known}"
    champion = tracker.champion_version(spec.name)
    if champion is not None and champion[0] == version:
        return "it is the champion; a challenger is another version"
    try:
        tracker.load_version(spec.name, version)
    except ChampionLoadError as exc:
        return f"its model does not load ({exc.reason}), so it could not be scored"
    return None


def history_command(args: argparse.Namespace) -> int:
    """Every recorded move of the spec's aliases, oldest first."""
    spec = spec_named(args.spec)
    if spec is None:
        return 2
    tracker = Tracker(default_tracking_uri())
    try:
        recorded = moves(tracker.client, spec.name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        sys.stdout.write(f"'{spec.name}' has no registered model yet\n")
        return 0
    champion = tracker.champion_version(spec.name)
    sys.stdout.write(
        f"'{spec.name}': {CHAMPION_ALIAS} is "
        f"{f'v{champion[0]}' if champion else 'not set'}; {len(recorded)} recorded move(s)\n"
    )
    for move in recorded:
        sys.stdout.write(move.line() + "\n")
    return 0
