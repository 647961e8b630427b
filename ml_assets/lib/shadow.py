"""Shadow scoring: the challenger scores the rows the champion scored, beside it, its
predictions kept apart and never served. Once labels arrive, both realized metrics and the
paired improvement of the challenger over the champion, over every labelled row of the days
both scored, say whether the challenger replaces the champion, stays in the shadow, or is
retired. Plain Python; the registry moves are in ``apply``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from ml_assets.lib.alias_history import TEXT_LIMIT, now
from ml_assets.lib.evaluation import estimate, paired_estimate
from ml_assets.lib.gate import Criterion, GateDecision, threshold_criteria
from ml_assets.lib.metrics import Estimate, get_metric, score
from ml_assets.lib.models import Model, target_of
from ml_assets.lib.names import GATE_REASONS_TAG, PROMOTED_TAG, SHADOW_TAG
from ml_assets.lib.realized import MIN_LABELS, labelled_rows, metric_input
from ml_assets.lib.spec import MLSpec, SuccessCriteria
from ml_assets.lib.tasks import task_for
from ml_assets.lib.tracking import CHALLENGER_ALIAS, CHAMPION_ALIAS, Tracker

# The champion's score columns, beside the challenger's, in a shadow frame.
CHAMPION_PREFIX = "champion__"
DAY_COLUMN = "shadow_day"
# Which champion/challenger pairing scored the day (``Tracker.pair_id``): after a rollback the
# same two versions can meet again, and the days before are another comparison.
PAIR_COLUMN = "shadow_pair"
VERSION_COLUMN = "model_version"
SCORE_COLUMNS = ("score", "predicted_label", VERSION_COLUMN)
PROBA_PREFIX = "proba_"
MONITORING_KIND = "shadow"  # the "kind" tag of a comparison's run in <spec>-monitoring

Action = Literal["promote", "retire", "continue", "observe"]


def score_columns(scored: pl.DataFrame) -> list[str]:
    """The columns scoring added to the day's rows (``Task.score``)."""
    return [c for c in scored.columns if c in SCORE_COLUMNS or c.startswith(PROBA_PREFIX)]


def unscored(scored: pl.DataFrame) -> pl.DataFrame:
    """The day's rows as they arrived, without the champion's score columns."""
    return scored.drop(score_columns(scored))


def beside(
    champion_scored: pl.DataFrame, challenger_scored: pl.DataFrame, day: str, pair_id: str = ""
) -> pl.DataFrame:
    """The challenger's scored rows with the champion's score columns beside them (prefixed),
    row for row, the day and the pairing's id."""
    if champion_scored.height != challenger_scored.height:
        raise ValueError(
            f"the challenger scored {challenger_scored.height} rows, the champion "
            f"{champion_scored.height}: shadow scoring compares the same rows"
        )
    champion = champion_scored.select(score_columns(champion_scored))
    return challenger_scored.hstack(
        champion.rename({c: CHAMPION_PREFIX + c for c in champion.columns})
    ).with_columns(pl.lit(day).alias(DAY_COLUMN), pl.lit(pair_id).alias(PAIR_COLUMN))


def champion_side(frame: pl.DataFrame) -> pl.DataFrame:
    """The champion's score columns of a shadow frame, under their own names."""
    columns = [c for c in frame.columns if c.startswith(CHAMPION_PREFIX)]
    return frame.select(columns).rename({c: c.removeprefix(CHAMPION_PREFIX) for c in columns})


@dataclass(frozen=True)
class Pair:
    champion: str  # versions
    challenger: str
    id: str | None  # the pairing's id; None in a frame written before ids were kept


def pair(frame: pl.DataFrame) -> Pair:
    """The pairing that scored the newest day of a (non-empty) shadow frame."""
    newest = frame.filter(pl.col(DAY_COLUMN) == frame[DAY_COLUMN].max())
    found = newest[PAIR_COLUMN][0] if PAIR_COLUMN in newest.columns else None
    return Pair(
        str(newest[CHAMPION_PREFIX + VERSION_COLUMN][0]),
        str(newest[VERSION_COLUMN][0]),
        None if found is None else str(found),
    )


def of_pair(frame: pl.DataFrame, which: Pair) -> pl.DataFrame:
    """The days scored by this pairing: the same two versions with no move of either alias in
    between (a rollback, a promotion or a new challenger starts a new comparison, even when
    the same two versions meet again)."""
    same = (pl.col(CHAMPION_PREFIX + VERSION_COLUMN).cast(pl.String) == which.champion) & (
        pl.col(VERSION_COLUMN).cast(pl.String) == which.challenger
    )
    if which.id is not None:
        same = same & (pl.col(PAIR_COLUMN) == which.id)
    return frame.filter(same)


@dataclass(frozen=True)
class ShadowComparison:
    """The challenger against the champion on the rows both scored, as labels arrived."""

    metric: str
    champion_version: str
    challenger_version: str
    days: list[str]
    labelled_days: list[str]  # days with at least one label
    rows: int
    labelled: int
    champion: Estimate | None  # None: too few labels yet
    challenger: Estimate | None
    improvement: Estimate | None  # challenger over champion, paired; above 0: better
    realized: dict[str, float]  # the challenger's realized value of each threshold metric
    per_day: pl.DataFrame

    def line(self) -> str:
        head = (
            f"challenger v{self.challenger_version} beside champion v{self.champion_version}: "
            f"{len(self.days)} day(s), {self.labelled:,} labelled of {self.rows:,} rows"
        )
        if self.improvement is None or self.champion is None or self.challenger is None:
            return f"{head}; too few labels to compare yet"
        return (
            f"{head}; realized {self.metric} champion {self.champion.fmt()}, challenger "
            f"{self.challenger.fmt()}, paired improvement {self.improvement.fmt()}"
        )


def compare(
    spec: MLSpec,
    frame: pl.DataFrame,
    champion: Model,
    challenger: Model,
    min_labels: int = MIN_LABELS,
) -> ShadowComparison:
    """Both realized metrics, with CIs, and the paired improvement, over the labelled rows
    of ``frame`` (one pair's shadow days), plus the same per day."""
    if champion.classes != challenger.classes or champion.positive != challenger.positive:
        raise ValueError(
            f"'{spec.name}': the champion and the challenger encode the target differently "
            f"(classes {champion.classes} vs {challenger.classes}, positive "
            f"{champion.positive!r} vs {challenger.positive!r}); they cannot be compared"
        )
    metric = get_metric(spec.primary_metric)
    paired = pair(frame)
    days = sorted(str(d) for d in frame[DAY_COLUMN].unique())
    labels = frame[spec.target].is_not_null() if spec.target in frame.columns else None
    labelled_days = (
        sorted(str(d) for d in frame.filter(labels)[DAY_COLUMN].unique())
        if labels is not None
        else []
    )
    found = _estimates(spec, frame, champion, challenger, min_labels)
    realized = {}
    if found is not None:
        y, ours, theirs = found[3]
        for name in spec.success_criteria.thresholds:
            m = get_metric(name)
            realized[name] = score(m, y, metric_input(m, challenger, ours))
    return ShadowComparison(
        metric.name,
        paired.champion,
        paired.challenger,
        days,
        labelled_days,
        frame.height,
        _labels(spec, frame),
        found[0] if found else None,
        found[1] if found else None,
        found[2] if found else None,
        realized,
        _per_day(spec, frame, champion, challenger, days),
    )


def _labels(spec: MLSpec, rows: pl.DataFrame) -> int:
    """How many of ``rows`` have their label (counted below ``MIN_LABELS`` too)."""
    return int(rows[spec.target].is_not_null().sum()) if spec.target in rows.columns else 0


Scores = tuple[np.ndarray, np.ndarray, np.ndarray]  # target, challenger's, champion's scores


def _estimates(
    spec: MLSpec, frame: pl.DataFrame, champion: Model, challenger: Model, min_labels: int
) -> tuple[Estimate, Estimate, Estimate, Scores] | None:
    metric = get_metric(spec.primary_metric)
    mask = labelled_rows(spec, frame, metric, min_labels)
    if mask is None:
        return None
    rows = frame.filter(pl.Series(mask))
    task = task_for(spec)
    y = target_of(spec, rows, challenger)
    ours = task.scores_of(challenger, rows)
    theirs = task.scores_of(champion, champion_side(rows))
    new, ref = metric_input(metric, challenger, ours), metric_input(metric, champion, theirs)
    return (
        estimate(spec, metric, y, ref),
        estimate(spec, metric, y, new),
        paired_estimate(spec, metric, y, new, ref),
        (y, ours, theirs),
    )


def _per_day(
    spec: MLSpec, frame: pl.DataFrame, champion: Model, challenger: Model, days: list[str]
) -> pl.DataFrame:
    """Each day's rows, labels and both realized metrics (NaN below ``MIN_LABELS``)."""
    metric, task, nan = get_metric(spec.primary_metric), task_for(spec), float("nan")
    out = []
    for day in days:
        rows = frame.filter(pl.col(DAY_COLUMN) == day)
        mask = labelled_rows(spec, rows, metric, MIN_LABELS)
        values = (nan, nan)
        if mask is not None:
            labelled = rows.filter(pl.Series(mask))
            y = target_of(spec, labelled, challenger)
            values = (
                score(
                    metric,
                    y,
                    metric_input(
                        metric, champion, task.scores_of(champion, champion_side(labelled))
                    ),
                ),
                score(
                    metric,
                    y,
                    metric_input(metric, challenger, task.scores_of(challenger, labelled)),
                ),
            )
        out.append(
            {
                "day": day,
                "rows": rows.height,
                "labelled": _labels(spec, rows),
                f"champion_{metric.name}": round(values[0], 4),
                f"challenger_{metric.name}": round(values[1], 4),
            }
        )
    return pl.DataFrame(out)


@dataclass(frozen=True)
class ShadowDecision:
    """What the shadow comparison decides, criterion by criterion (the gate's vocabulary)."""

    action: Action
    gate: GateDecision

    def text(self) -> str:
        said = {
            "promote": "PROMOTE the challenger: every shadow criterion passed",
            "retire": "RETIRE the challenger: worse than the champion in shadow",
            "continue": "keep shadowing",
            "observe": "reported only: monitoring.shadow_days is not set",
        }[self.action]
        reasons = "; ".join(self.gate.reasons)
        return f"{said}" + (f" ({reasons})" if reasons and self.action != "promote" else "")


def decide(
    comparison: ShadowComparison, shadow_days: int | None, criteria: SuccessCriteria
) -> ShadowDecision:
    """Promote when, after ``shadow_days`` labelled days, the paired improvement's CI is above
    0 and the challenger's realized metrics meet the spec's thresholds; retire when by then
    its CI is below 0; otherwise keep comparing. Without ``shadow_days``: report only."""
    days = len(comparison.labelled_days)
    checks = [
        Criterion(
            "shadow_days",
            shadow_days is not None and days >= shadow_days,
            f"{days} labelled shadow day(s), required >= {shadow_days} (monitoring.shadow_days)"
            if shadow_days is not None
            else f"{days} labelled shadow day(s); monitoring.shadow_days is not set",
        )
    ]
    d = comparison.improvement
    checks.append(
        Criterion(
            "beats_champion_in_shadow",
            d is not None and d.lower > 0,
            f"paired improvement in realized {comparison.metric} over champion "
            f"v{comparison.champion_version} {d.fmt() if d else 'n/a (too few labels)'} over "
            f"{comparison.labelled:,} labelled rows; its CI must be above 0",
        )
    )
    if comparison.realized:
        checks += threshold_criteria(comparison.realized, criteria, "realized")
    gate = GateDecision(all(c.passed for c in checks), checks)
    if shadow_days is None:
        return ShadowDecision("observe", gate)
    if gate.promote:
        return ShadowDecision("promote", gate)
    if days >= shadow_days and d is not None and d.upper < 0:
        return ShadowDecision("retire", gate)
    return ShadowDecision("continue", gate)


def apply(
    tracker: Tracker,
    name: str,
    comparison: ShadowComparison,
    decision: ShadowDecision,
    who: str,
    pair_id: str | None = None,
) -> str:
    """Carry out a promote or retire decision, under the promotion lock and only while both
    aliases still point where the comparison found them and, given the pairing's ``pair_id``,
    neither moved since (days of an earlier pairing of the same versions decide nothing)."""
    if decision.action not in ("promote", "retire"):
        return decision.text()
    compared = (comparison.champion_version, comparison.challenger_version)
    version = comparison.challenger_version
    with tracker.promotion_lock(name):
        now_at = (
            tracker.alias_version(name, CHAMPION_ALIAS),
            tracker.alias_version(name, CHALLENGER_ALIAS),
        )
        if now_at != compared:
            return (
                f"nothing moved: the champion is {_v(now_at[0])} and the challenger "
                f"{_v(now_at[1])} now, not the pair compared (v{compared[0]}, v{compared[1]})"
            )
        now_id = tracker.pair_id(name)
        if pair_id is not None and now_id != pair_id:
            return (
                f"nothing moved: an alias moved since these days were scored (pairing "
                f"{pair_id or 'none'}, now {now_id or 'none'}); the pair's comparison starts "
                "over from the next day scored"
            )
        summary = comparison.line()
        if decision.action == "promote":
            tracker.set_champion(name, version, who, summary[:TEXT_LIMIT], "shadow_promotion")
            tracker.remove_alias(
                name, CHALLENGER_ALIAS, "promoted", who, f"v{version} is now the champion", version
            )
            said = f"all criteria passed in the shadow of v{compared[0]}: {summary}"
            run_id = tracker.client.get_model_version(name, version).run_id
            tracker.log_evaluation(run_id, {}, {PROMOTED_TAG: "True", GATE_REASONS_TAG: said}, {})
            tracker.client.set_model_version_tag(name, version, PROMOTED_TAG, "True")
            tracker.client.set_model_version_tag(name, version, GATE_REASONS_TAG, said)
            done = f"v{version} PROMOTED to champion from the shadow of v{compared[0]}"
        else:
            reasons = "; ".join(decision.gate.reasons)
            tracker.remove_alias(
                name, CHALLENGER_ALIAS, "retired", who, reasons[:TEXT_LIMIT], version
            )
            done = f"challenger v{version} RETIRED, champion stays v{compared[0]}: {reasons}"
        tracker.client.set_model_version_tag(
            name, version, SHADOW_TAG, f"{now()} {done}; {summary}"[:TEXT_LIMIT]
        )
    return done


def _v(version: str | None) -> str:
    return f"v{version}" if version else "not set"
