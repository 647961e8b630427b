"""alias_history.py: every move of the champion alias recorded, and rollback, on a real
SQLite registry."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from ml_assets.lib.alias_history import (
    LAST_ROLLBACK_TAG,
    ROLLED_BACK_FROM_TAG,
    ROLLED_BACK_TO_TAG,
    AliasMove,
    RollbackError,
    RollbackIncomplete,
    moves,
    rollback,
    rollback_target,
)
from ml_assets.lib.names import PROMOTED_TAG
from ml_assets.lib.tracking import CHALLENGER_ALIAS, CHAMPION_ALIAS, Tracker
from ml_assets_tests.lib.conftest import Fitted


def _move(source: str | None, to: str) -> AliasMove:
    return AliasMove(CHAMPION_ALIAS, source, to, "promotion", "run", "2026-01-01T00:00:00", "")


def test_the_target_is_where_the_alias_came_from_else_the_newest_older_promoted() -> None:
    history = [_move(None, "1"), _move("1", "3"), _move("3", "4")]
    assert rollback_target(history, CHAMPION_ALIAS, "4", []) == "3"
    assert rollback_target(history, CHAMPION_ALIAS, "3", []) == "1"
    assert rollback_target(history, CHAMPION_ALIAS, "1", ["1", "3"]) is None  # the first one
    # Rolled back from 4 to 3: the next rollback goes on to 1, not back to 4.
    undo = AliasMove(CHAMPION_ALIAS, "4", "3", "rollback", "alice", "2026-01-02T00:00:00Z", "")
    assert rollback_target([*history, undo], CHAMPION_ALIAS, "3", []) == "1"
    # No recorded move onto v5 (promoted before moves were kept): the newest promoted below it.
    assert rollback_target(history, CHAMPION_ALIAS, "5", ["1", "2", "4", "6"]) == "4"
    assert rollback_target([], CHAMPION_ALIAS, "1", ["1"]) is None


def _register_three(tracker: Tracker, name: str, t: Fitted) -> list[str]:
    versions = []
    for model in (t.glm, t.lightgbm, t.glm):
        logged = tracker.log_model("history", model, t.validation, {}, {})
        versions.append(tracker.register(name, logged, "card", {PROMOTED_TAG: "True"}))
    return versions


def _loads(tracker: Tracker, name: str):  # noqa: ANN202
    return lambda version: tracker.load_version(name, version)


def test_promotions_are_recorded_and_a_rollback_goes_back_one_step(
    tracker: Tracker, trained_classification: Fitted
) -> None:
    t = trained_classification
    v1, v2, _ = _register_three(tracker, "rolled", t)
    tracker.set_champion("rolled", v1, "Dagster run a", "passed every gate criterion")
    tracker.set_champion("rolled", v2, "Dagster run b", "passed every gate criterion")
    assert [(m.from_version, m.to_version, m.who) for m in moves(tracker.client, "rolled")] == [
        (None, "1", "Dagster run a"),
        ("1", "2", "Dagster run b"),
    ]

    move = rollback(
        tracker.client,
        "rolled",
        CHAMPION_ALIAS,
        None,
        "AUC fell on the new region",
        "alice",
        _loads(tracker, "rolled"),
        PROMOTED_TAG,
    )
    assert (move.from_version, move.to_version, move.action, move.who) == (
        "2",
        "1",
        "rollback",
        "alice",
    )
    assert tracker.champion_version("rolled")[0] == "1"
    champion = tracker.load_champion("rolled")
    np.testing.assert_allclose(champion.model.predict(t.test), t.glm.predict(t.test))
    history = moves(tracker.client, "rolled")
    assert [m.action for m in history] == ["promotion", "promotion", "rollback"]
    assert history[-1].why == "AUC fell on the new region" and history[-1].when
    model_tags = tracker.client.get_registered_model("rolled").tags
    assert "v2 -> v1" in model_tags[LAST_ROLLBACK_TAG] and "alice" in model_tags[LAST_ROLLBACK_TAG]
    to_tags = tracker.client.get_model_version("rolled", "1").tags
    from_tags = tracker.client.get_model_version("rolled", "2").tags
    assert "from v2" in to_tags[ROLLED_BACK_TO_TAG] and "AUC fell" in to_tags[ROLLED_BACK_TO_TAG]
    assert "to v1" in from_tags[ROLLED_BACK_FROM_TAG]
    # Rolled back to v1, which came from no champion: nothing earlier, unless named.
    with pytest.raises(RollbackError, match="no earlier champion"):
        rollback(
            tracker.client,
            "rolled",
            CHAMPION_ALIAS,
            None,
            "again",
            "alice",
            _loads(tracker, "rolled"),
            "none",
        )
    rollback(
        tracker.client,
        "rolled",
        CHAMPION_ALIAS,
        "3",
        "forward",
        "bob",
        _loads(tracker, "rolled"),
        PROMOTED_TAG,
    )
    assert tracker.champion_version("rolled")[0] == "3"


@pytest.mark.parametrize(
    ("to", "reason", "message"),
    [
        ("9", "a reason", r"has no version 9; its versions are \['1', '2', '3'\]"),
        ("2", "a reason", "v2 is already the champion"),
        ("1", "  ", "say why"),
        ("1", "x" * 1001, "of 1 to 1000 characters each"),
    ],
)
def test_a_rollback_that_cannot_be_done_says_why_and_moves_nothing(
    tracker: Tracker, trained_classification: Fitted, to: str, reason: str, message: str
) -> None:
    name = f"refused_{to}_{len(reason.strip())}_{len(reason)}"
    v1, v2, _ = _register_three(tracker, name, trained_classification)
    tracker.set_champion(name, v2)
    with pytest.raises(RollbackError, match=message):
        rollback(
            tracker.client,
            name,
            CHAMPION_ALIAS,
            to,
            reason,
            "alice",
            _loads(tracker, name),
            PROMOTED_TAG,
        )
    assert tracker.champion_version(name)[0] == "2"
    assert [m.action for m in moves(tracker.client, name)] == ["promotion"]


def test_a_version_whose_model_no_longer_loads_is_refused(
    tracker: Tracker, trained_classification: Fitted
) -> None:
    v1, v2, _ = _register_three(tracker, "gone", trained_classification)
    tracker.set_champion("gone", v1)
    tracker.set_champion("gone", v2)
    # v1's model files are lost (a cleaned bucket, a moved artifact store).
    source = tracker.client.get_model_version("gone", v1).source
    location = tracker.client.get_logged_model(source.removeprefix("models:/")).artifact_location
    shutil.rmtree(Path(urlparse(location).path))
    with pytest.raises(RollbackError, match="v1 cannot be loaded, so it cannot serve"):
        rollback(
            tracker.client,
            "gone",
            CHAMPION_ALIAS,
            None,
            "bad day",
            "alice",
            _loads(tracker, "gone"),
            PROMOTED_TAG,
        )
    assert tracker.champion_version("gone")[0] == "2"


def test_history_skips_a_tag_that_is_not_a_move(
    tracker: Tracker, trained_classification: Fitted
) -> None:
    v1, _, _ = _register_three(tracker, "edited", trained_classification)
    tracker.set_champion("edited", v1, "run", "first")
    tracker.client.set_registered_model_tag("edited", "alias_move.by_hand", "not json")
    assert [m.why for m in moves(tracker.client, "edited")] == ["first"]


def test_the_challenger_follows_the_rollback_even_when_tagging_the_versions_fails(
    tracker: Tracker, trained_classification: Fitted, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1, v2, _ = _register_three(tracker, "tagless", trained_classification)
    tracker.set_champion("tagless", v1)
    tracker.set_champion("tagless", v2)
    client = tracker.client

    def refuse(*args: object) -> None:  # a registry that stops taking tags mid-rollback
        raise MlflowException("tag store unavailable")

    monkeypatch.setattr(client, "set_model_version_tag", refuse)
    with pytest.raises(RollbackIncomplete, match="now v1 .*, but recording who and why .* failed"):
        tracker.rollback("tagless", None, "bad day", "alice", shadow=True)
    assert tracker.alias_version("tagless", CHAMPION_ALIAS) == v1
    assert tracker.alias_version("tagless", CHALLENGER_ALIAS) == v2


def test_a_rollback_whose_followers_fail_says_the_alias_moved_and_still_tags(
    tracker: Tracker, trained_classification: Fitted
) -> None:
    v1, v2, _ = _register_three(tracker, "halfway", trained_classification)
    tracker.set_champion("halfway", v1)
    tracker.set_champion("halfway", v2)

    def follower(move: object) -> None:  # an alias that should follow but cannot
        raise MlflowException("alias store unavailable")

    with pytest.raises(RollbackIncomplete, match="follow it did not: alias store unavailable"):
        rollback(
            tracker.client, "halfway", CHAMPION_ALIAS, None, "bad day", "alice",
            _loads(tracker, "halfway"), PROMOTED_TAG, follower,
        )  # fmt: skip
    assert tracker.alias_version("halfway", CHAMPION_ALIAS) == v1
    assert ROLLED_BACK_TO_TAG in tracker.client.get_model_version("halfway", v1).tags
