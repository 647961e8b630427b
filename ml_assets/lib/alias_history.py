"""Who moved a registered model's alias, when, why and how: each move kept as a tag on the
registered model (MLflow keeps only where an alias points now), and rollback to an earlier
version. Plain MLflow client calls; no Dagster."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

MOVE_TAG_PREFIX = "alias_move."
# Tags on a version the alias was rolled back to, and on the one it was rolled back from.
ROLLED_BACK_TO_TAG = "rolled_back_to"
ROLLED_BACK_FROM_TAG = "rolled_back_from"
LAST_ROLLBACK_TAG = "last_rollback"  # on the registered model
# MLflow's SQL stores hold a tag value in 5,000 characters (PostgreSQL enforces it): a move's
# who and why are capped well below, and the oldest moves are dropped beyond KEPT_MOVES.
TEXT_LIMIT = 1000
KEPT_MOVES = 200
# What the registry answers for an alias that does not exist (SQL store, tracking server).
NOT_FOUND = ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")


class RollbackError(ValueError):
    """A rollback that cannot be done, with what to do instead."""


class RollbackIncomplete(RollbackError):
    """A rollback whose alias moved but whose followers or records did not all follow."""


@dataclass(frozen=True)
class AliasMove:
    alias: str
    from_version: str | None
    to_version: str | None  # None: the alias was removed
    action: str  # "promotion", "rollback", "challenger", "retired", ...
    who: str
    when: str  # ISO 8601, UTC
    why: str

    def line(self) -> str:
        came = f"v{self.from_version}" if self.from_version else f"no {self.alias}"
        went = f"v{self.to_version}" if self.to_version else "removed"
        return (
            f"{self.when}  {self.action:<10} {self.alias}: {came} -> {went}  "
            f"by {self.who}: {self.why}"
        )


def now() -> str:
    """UTC, to the second, e.g. 2026-12-02T16:48:05Z (also usable in a tag key)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_move(client: MlflowClient, name: str, move: AliasMove) -> None:
    """One tag per move, its key ordered by time to the nanosecond (and unique); beyond
    KEPT_MOVES, the oldest are removed."""
    key = f"{MOVE_TAG_PREFIX}{time.time_ns():020d}.{uuid.uuid4().hex[:6]}"
    client.set_registered_model_tag(name, key, json.dumps(asdict(move), ensure_ascii=False))
    keys = sorted(
        k for k in client.get_registered_model(name).tags if k.startswith(MOVE_TAG_PREFIX)
    )
    for old in keys[:-KEPT_MOVES]:
        client.delete_registered_model_tag(name, old)


def moves(client: MlflowClient, name: str) -> list[AliasMove]:
    """Every recorded move of ``name``'s aliases, oldest first (a tag that is not a move, e.g.
    edited by hand, is skipped)."""
    return [move for _, move in _recorded(client, name)]


def last_move_id(client: MlflowClient, name: str, aliases: tuple[str, ...]) -> str:
    """A unique id of the newest recorded move of any of ``aliases`` ("" when none): the same
    id means neither alias moved in between, even if they point where they pointed before."""
    found = [key for key, move in _recorded(client, name) if move.alias in aliases]
    return found[-1].removeprefix(MOVE_TAG_PREFIX) if found else ""


def _recorded(client: MlflowClient, name: str) -> list[tuple[str, AliasMove]]:
    found = []
    for key, value in sorted(client.get_registered_model(name).tags.items()):
        if not key.startswith(MOVE_TAG_PREFIX):
            continue
        try:
            found.append((key, AliasMove(**json.loads(value))))
        except (ValueError, TypeError):
            continue
    return found


def current_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """Where ``alias`` points, None when it points nowhere; any other registry error raises
    (an unreachable server is not "no champion")."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND:
            return None
        raise


def move_alias(
    client: MlflowClient, name: str, alias: str, version: str, action: str, who: str, why: str
) -> AliasMove:
    """Point ``alias`` at ``version`` and record the move."""
    move = AliasMove(
        alias, current_version(client, name, alias), str(version), action, who, now(), why
    )
    client.set_registered_model_alias(name, alias, version)
    record_move(client, name, move)
    return move


def remove_alias(
    client: MlflowClient,
    name: str,
    alias: str,
    action: str,
    who: str,
    why: str,
    expected: str | None = None,
) -> AliasMove | None:
    """Remove ``alias`` and record the move; None (nothing removed or recorded) when it points
    nowhere, or, given ``expected``, at another version than that one."""
    current = current_version(client, name, alias)
    if current is None or (expected is not None and current != str(expected)):
        return None
    client.delete_registered_model_alias(name, alias)
    move = AliasMove(alias, current, None, action, who, now(), why)
    record_move(client, name, move)
    return move


def record_problem(why: str, who: str) -> str | None:
    """What is wrong with the why and who given for a move by hand (None: nothing)."""
    if not why.strip():
        return 'say why: --reason "..." is recorded with the move'
    if not who.strip() or len(why) > TEXT_LIMIT or len(who) > TEXT_LIMIT:
        return f"give a reason and a who of 1 to {TEXT_LIMIT} characters each"
    return None


def rollback_target(
    history: list[AliasMove], alias: str, current: str, promoted: list[str]
) -> str | None:
    """The version ``alias`` pointed at before ``current`` was promoted: the newest promotion
    onto ``current`` says where from (a rollback onto it does not: rolling back twice must not
    return to the version the first rollback left). Without a recorded promotion (versions
    promoted before moves were recorded), the newest promoted version older than ``current``."""
    for move in reversed(history):
        if move.alias == alias and move.to_version == current and move.action != "rollback":
            return move.from_version
    older = sorted((int(v) for v in promoted if int(v) < int(current)), reverse=True)
    return str(older[0]) if older else None


def rollback(
    client: MlflowClient,
    name: str,
    alias: str,
    to: str | None,
    reason: str,
    who: str,
    loads: Callable[[str], object],
    promoted_tag: str,
    then: Callable[[AliasMove], None] | None = None,
) -> AliasMove:
    """Move ``alias`` back to ``to`` (default: where it was before), after checking that the
    version's model still loads (``loads(version)`` raises otherwise); ``then(move)`` right
    after the move (other aliases that follow it); tags the registered model and both versions
    with who, when and why, even when ``then`` fails. RollbackIncomplete when the alias moved
    but ``then`` or the tags failed; RollbackError, with nothing moved, otherwise."""
    problem = record_problem(reason, who)
    if problem is not None:
        raise RollbackError(problem)
    current = current_version(client, name, alias)
    if current is None:
        raise RollbackError(f"'{name}' has no '{alias}' alias to roll back")
    versions = client.search_model_versions(f"name='{name}'")
    known = {str(v.version) for v in versions}
    if to is None:
        promoted = [str(v.version) for v in versions if v.tags.get(promoted_tag) == "True"]
        to = rollback_target(moves(client, name), alias, current, promoted)
        if to is None:
            raise RollbackError(
                f"'{name}' v{current} has no earlier {alias} to roll back to; name one with --to"
            )
    if to not in known:
        raise RollbackError(
            f"'{name}' has no version {to}; its versions are {sorted(known, key=int)}"
        )
    if to == current:
        raise RollbackError(f"'{name}' v{to} is already the {alias}")
    try:
        loads(to)
    except Exception as exc:  # noqa: BLE001 (whatever stops it loading stops the rollback)
        raise RollbackError(
            f"'{name}' v{to} cannot be loaded, so it cannot serve: {exc}. The {alias} stays "
            f"v{current}; pick another version with --to"
        ) from exc
    now_at = current_version(client, name, alias)
    if now_at != current:  # a promotion moved it while the version was being loaded
        raise RollbackError(
            f"the {alias} moved from v{current} to v{now_at} during this rollback; nothing "
            "changed: look at `history` and run it again"
        )
    move = move_alias(client, name, alias, to, "rollback", who, reason)
    failed = []
    if then is not None:
        try:
            then(move)
        except Exception as exc:  # noqa: BLE001 (the move is done: say so, whatever failed)
            failed.append(f"the aliases that follow it did not: {exc}")
    try:
        _tag_rollback(client, name, move, current, to)
    except MlflowException as exc:
        failed.append(f"recording who and why on the versions failed: {exc}")
    if failed:
        raise RollbackIncomplete(
            f"the {alias} is now v{to} (moved from v{current}), but {'; and '.join(failed)}. "
            "Do not run the rollback again (it would go one version further back): look at "
            "`history` and finish by hand"
        )
    return move


def _tag_rollback(client: MlflowClient, name: str, move: AliasMove, current: str, to: str) -> None:
    said = f"{move.when} by {move.who}: {move.why}"
    client.set_model_version_tag(name, to, ROLLED_BACK_TO_TAG, f"from v{current} at {said}")
    client.set_model_version_tag(name, current, ROLLED_BACK_FROM_TAG, f"to v{to} at {said}")
    client.set_registered_model_tag(name, LAST_ROLLBACK_TAG, f"v{current} -> v{to} at {said}")
