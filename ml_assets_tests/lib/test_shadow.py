"""shadow.py: the challenger's rows beside the champion's, the paired comparison as labels
arrive, what it decides, and the registry moves (on a real SQLite registry)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ml_assets.lib import shadow
from ml_assets.lib.alias_history import moves
from ml_assets.lib.metrics import Estimate, get_metric, score
from ml_assets.lib.models import target_of
from ml_assets.lib.names import PROMOTED_TAG, SHADOW_TAG
from ml_assets.lib.spec import SuccessCriteria
from ml_assets.lib.tasks import task_for
from ml_assets.lib.tracking import CHALLENGER_ALIAS, CHAMPION_ALIAS, Tracker
from ml_assets_tests.lib.conftest import Fitted


def _shadow_days(  # noqa: ANN202
    t: Fitted, days: list[str], champion: str = "1", challenger: str = "2", pair_id: str = "a"
):
    """The test rows, cut into ``days``, scored by the GLM (champion) and LightGBM."""
    task = task_for(t.spec)
    parts = []
    for day, rows in zip(days, np.array_split(np.arange(t.test.height), len(days)), strict=True):
        frame = t.test[rows.tolist()]
        served = task.score(t.spec, t.glm, champion, frame)
        theirs = task.score(t.spec, t.lightgbm, challenger, shadow.unscored(served))
        parts.append(shadow.beside(served, theirs, day, pair_id))
    return pl.concat(parts)


def test_the_comparison_is_the_paired_difference_on_the_rows_both_scored(
    trained_classification: Fitted,
) -> None:
    t = trained_classification
    frame = _shadow_days(t, ["2026-01-01", "2026-01-02"])
    assert frame.height == t.test.height
    assert shadow.unscored(shadow.champion_side(frame)).width == 0  # only score columns
    out = shadow.compare(t.spec, frame, t.glm, t.lightgbm, min_labels=10)
    auc, y = get_metric("roc_auc"), target_of(t.spec, t.test, t.glm)
    theirs, ours = score(auc, y, t.glm.predict(t.test)), score(auc, y, t.lightgbm.predict(t.test))
    assert out.champion is not None and out.challenger is not None
    assert out.improvement is not None
    assert out.champion.value == pytest.approx(theirs, abs=1e-12)
    assert out.challenger.value == pytest.approx(ours, abs=1e-12)
    assert out.improvement.value == pytest.approx(ours - theirs, abs=1e-12)
    assert out.improvement.lower <= out.improvement.value <= out.improvement.upper
    assert (out.champion_version, out.challenger_version) == ("1", "2")
    assert out.days == out.labelled_days == ["2026-01-01", "2026-01-02"]
    assert out.labelled == t.test.height and out.realized["roc_auc"] == pytest.approx(ours)
    assert out.per_day["rows"].sum() == t.test.height
    assert "paired improvement" in out.line()


def test_unlabelled_rows_are_left_out_and_too_few_labels_compare_nothing(
    trained_classification: Fitted,
) -> None:
    t = trained_classification
    frame = _shadow_days(t, ["2026-01-01"]).with_columns(pl.lit(None, pl.Int64).alias("y"))
    out = shadow.compare(t.spec, frame, t.glm, t.lightgbm)
    assert out.improvement is None and out.labelled == 0 and out.labelled_days == []
    assert "too few labels" in out.line()
    # A few labels in: counted, day by day, though too few to compare.
    few = frame.with_columns(pl.when(pl.int_range(pl.len()) < 5).then(1).otherwise(None).alias("y"))
    out = shadow.compare(t.spec, few, t.glm, t.lightgbm)
    assert out.improvement is None and out.labelled == 5
    assert out.per_day["labelled"].to_list() == [5]
    decision = shadow.decide(out, 1, SuccessCriteria())
    assert decision.action == "continue" and not decision.gate.promote


def test_a_rollback_or_a_new_challenger_starts_a_new_pair(trained_classification: Fitted) -> None:
    t = trained_classification
    first = _shadow_days(t, ["2026-01-01", "2026-01-02"])
    later = _shadow_days(t, ["2026-01-03"], champion="2", challenger="1")
    frame = pl.concat([first, later])
    assert shadow.pair(frame) == shadow.Pair("2", "1", "a")
    newest = shadow.of_pair(frame, shadow.pair(frame))
    assert newest[shadow.DAY_COLUMN].unique().to_list() == ["2026-01-03"]
    assert shadow.of_pair(frame, shadow.Pair("1", "2", "a")).height == first.height


def test_the_same_two_versions_meeting_again_are_a_new_comparison(
    trained_classification: Fitted,
) -> None:
    """v2 shadowed v1, was promoted, then rolled back with --keep-as-challenger: the same two
    versions again, but the days before the rollback must not count towards this pairing."""
    t = trained_classification
    before = _shadow_days(t, ["2026-01-01", "2026-01-02", "2026-01-03"], pair_id="p1")
    after = _shadow_days(t, ["2026-01-05"], pair_id="p2")
    frame = pl.concat([before, after])
    assert shadow.pair(frame) == shadow.Pair("1", "2", "p2")
    out = shadow.compare(t.spec, shadow.of_pair(frame, shadow.pair(frame)), t.glm, t.lightgbm)
    assert out.days == out.labelled_days == ["2026-01-05"]
    assert out.rows == after.height
    # A frame written before pairings had ids: the versions alone decide.
    old = before.drop(shadow.PAIR_COLUMN)
    assert shadow.pair(old).id is None
    assert shadow.of_pair(old, shadow.pair(old)).height == before.height
    # Upgraded mid-comparison: the days without an id are left out once a day has one.
    mixed = pl.concat([old, after], how="diagonal_relaxed")
    assert shadow.of_pair(mixed, shadow.pair(mixed)).height == after.height


def test_the_challenger_must_score_the_same_rows(trained_classification: Fitted) -> None:
    t = trained_classification
    served = task_for(t.spec).score(t.spec, t.glm, "1", t.test)
    with pytest.raises(ValueError, match="same rows"):
        shadow.beside(served, served.head(3), "2026-01-01")


def _comparison(
    improvement: Estimate | None, labelled_days: int, realized: float = 0.8
) -> shadow.ShadowComparison:
    days = [f"2026-01-{d + 1:02d}" for d in range(labelled_days)]
    estimate = Estimate(0.7, 0.65, 0.75)
    return shadow.ShadowComparison(
        "roc_auc", "1", "2", days, days, 3000, 3000, estimate, estimate, improvement,
        {"roc_auc": realized}, pl.DataFrame(),
    )  # fmt: skip


CRITERIA = SuccessCriteria.model_validate({"thresholds": {"roc_auc": {"min": 0.6}}})


@pytest.mark.parametrize(
    ("improvement", "days", "realized", "shadow_days", "action"),
    [
        (Estimate(0.05, 0.02, 0.08), 3, 0.8, 3, "promote"),
        (Estimate(0.05, 0.02, 0.08), 2, 0.8, 3, "continue"),  # too early
        (Estimate(0.05, 0.02, 0.08), 3, 0.55, 3, "continue"),  # below the spec's threshold
        (Estimate(0.01, -0.01, 0.03), 5, 0.8, 3, "continue"),  # not surely better: wait on
        (Estimate(-0.05, -0.08, -0.02), 3, 0.8, 3, "retire"),
        (Estimate(-0.05, -0.08, -0.02), 2, 0.8, 3, "continue"),
        (Estimate(0.05, 0.02, 0.08), 9, 0.8, None, "observe"),  # no shadow_days: report only
    ],
)
def test_the_decision_follows_days_ci_and_thresholds(
    improvement: Estimate, days: int, realized: float, shadow_days: int | None, action: str
) -> None:
    decision = shadow.decide(_comparison(improvement, days, realized), shadow_days, CRITERIA)
    assert decision.action == action
    names = {c.name: c.passed for c in decision.gate.criteria}
    assert set(names) == {"shadow_days", "beats_champion_in_shadow", "threshold_roc_auc"}
    assert decision.gate.promote is (action == "promote")
    said = {"promote": "PROMOTE", "retire": "RETIRE", "continue": "keep", "observe": "reported"}
    assert decision.text().startswith(said[action])
    if action in ("retire", "continue"):  # and why
        assert decision.gate.reasons[0] in decision.text()


def _two_versions(tracker: Tracker, t: Fitted, name: str) -> None:
    for model in (t.glm, t.lightgbm):
        logged = tracker.log_model("shadow", model, t.validation, {}, {})
        tracker.register(name, logged, "card", {PROMOTED_TAG: "False"})
    tracker.set_champion(name, "1", "test", "first")
    tracker.set_alias(name, CHALLENGER_ALIAS, "2", "challenger", "test", "in the shadow")


def test_a_promotion_moves_both_aliases_and_tags_the_version(
    tracker: Tracker, trained_classification: Fitted
) -> None:
    t, name = trained_classification, "shadow_promote"
    _two_versions(tracker, t, name)
    better = _comparison(Estimate(0.05, 0.02, 0.08), 3)
    decision = shadow.decide(better, 3, CRITERIA)
    done = shadow.apply(tracker, name, better, decision, "Dagster run r1")
    assert done.startswith("v2 PROMOTED")
    assert tracker.alias_version(name, CHAMPION_ALIAS) == "2"
    assert tracker.alias_version(name, CHALLENGER_ALIAS) is None
    tags = tracker.client.get_model_version(name, "2").tags
    assert tags[PROMOTED_TAG] == "True" and "PROMOTED" in tags[SHADOW_TAG]
    run = tracker.client.get_run(tracker.client.get_model_version(name, "2").run_id)
    assert run.data.tags[PROMOTED_TAG] == "True"
    last = moves(tracker.client, name)[-2:]
    assert [(m.alias, m.action, m.who) for m in last] == [
        (CHAMPION_ALIAS, "shadow_promotion", "Dagster run r1"),
        (CHALLENGER_ALIAS, "promoted", "Dagster run r1"),
    ]
    # The same decision again: the aliases moved since, so nothing moves.
    again = shadow.apply(tracker, name, better, decision, "Dagster run r2")
    assert again.startswith("nothing moved") and tracker.alias_version(name, CHAMPION_ALIAS) == "2"


def test_days_of_an_earlier_pairing_of_the_same_versions_decide_nothing(
    tracker: Tracker, trained_classification: Fitted
) -> None:
    """v2 shadowed v1 under one pairing, was promoted, then rolled back and kept in the shadow:
    the same two versions, but a late comparison of the first pairing's days moves nothing."""
    t, name = trained_classification, "shadow_stale_pair"
    _two_versions(tracker, t, name)
    first = tracker.pair_id(name)
    better = _comparison(Estimate(0.05, 0.02, 0.08), 3)
    decision = shadow.decide(better, 3, CRITERIA)
    assert shadow.apply(tracker, name, better, decision, "run", first).startswith("v2 PROMOTED")
    tracker.rollback(name, "1", "back to v1", "alice", shadow=True)
    said = shadow.apply(tracker, name, better, decision, "late run", first)
    assert said.startswith("nothing moved: an alias moved since these days were scored")
    assert tracker.alias_version(name, CHAMPION_ALIAS) == "1"
    assert tracker.alias_version(name, CHALLENGER_ALIAS) == "2"
    # The new pairing's own days still decide.
    now = shadow.apply(tracker, name, better, decision, "run", tracker.pair_id(name))
    assert now.startswith("v2 PROMOTED")


def test_a_retired_challenger_loses_its_alias_and_the_champion_stays(
    tracker: Tracker, trained_classification: Fitted
) -> None:
    t, name = trained_classification, "shadow_retire"
    _two_versions(tracker, t, name)
    worse = _comparison(Estimate(-0.05, -0.08, -0.02), 3)
    done = shadow.apply(tracker, name, worse, shadow.decide(worse, 3, CRITERIA), "run")
    assert "RETIRED" in done
    assert tracker.alias_version(name, CHAMPION_ALIAS) == "1"
    assert tracker.alias_version(name, CHALLENGER_ALIAS) is None
    assert "RETIRED" in tracker.client.get_model_version(name, "2").tags[SHADOW_TAG]
    assert tracker.remove_alias(name, CHALLENGER_ALIAS, "retired", "run", "again") is None
    waiting = _comparison(Estimate(0.05, 0.02, 0.08), 1)
    said = shadow.apply(tracker, name, waiting, shadow.decide(waiting, 3, CRITERIA), "run")
    assert said.startswith("keep shadowing")  # nothing to do before the days are in


def test_rolling_back_to_the_challenger_takes_its_alias_away(
    tracker: Tracker, trained_classification: Fitted
) -> None:
    t, name = trained_classification, "shadow_rollback"
    _two_versions(tracker, t, name)
    tracker.rollback(name, "2", "the challenger is the better one", "alice")
    assert tracker.alias_version(name, CHAMPION_ALIAS) == "2"
    assert tracker.alias_version(name, CHALLENGER_ALIAS) is None
    # Kept as challenger the other way round: the version rolled back from.
    pairing = tracker.pair_id(name)
    tracker.rollback(name, "1", "back again", "alice", shadow=True)
    assert tracker.alias_version(name, CHALLENGER_ALIAS) == "2"
    assert moves(tracker.client, name)[-1].why == "rolled back from, kept in the shadow: back again"
    assert tracker.pair_id(name) not in ("", pairing)  # a new pairing
