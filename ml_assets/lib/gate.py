"""The promotion gate: a candidate becomes champion only when it earns it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ml_assets.lib.evaluation import Evaluation, Lineage
from ml_assets.lib.metrics import get_metric, relative_improvement
from ml_assets.lib.names import CODE_VERSION_TAG, DATA_FINGERPRINT_TAG, SPEC_DIGEST_TAG
from ml_assets.lib.records import Trained
from ml_assets.lib.spec import SuccessCriteria


@dataclass(frozen=True)
class Criterion:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    criteria: list[Criterion]

    @property
    def repeats_champion(self) -> bool:
        """The candidate is the champion again (same predictions, or same data, spec and code)."""
        return any(c.name == IDENTICAL_TO_CHAMPION and not c.passed for c in self.criteria)

    @property
    def reasons(self) -> list[str]:
        """Why the candidate was not promoted (empty when it was)."""
        return [f"{c.name}: {c.detail}" for c in self.criteria if not c.passed]

    @property
    def fails_only_champion_comparison(self) -> bool:
        """Every criterion passed but the comparison with the champion on the test rows: a
        challenger, worth scoring in the champion's shadow on the days to come."""
        return {c.name for c in self.criteria if not c.passed} == {NOT_WORSE_THAN_CHAMPION}

    def markdown(self) -> str:
        lines = ["| criterion | passed | detail |", "|---|---|---|"]
        lines += [
            f"| {c.name} | {'yes' if c.passed else '**NO**'} | {c.detail} |" for c in self.criteria
        ]
        return "\n".join(lines)


def threshold_criteria(
    values: Mapping[str, float], criteria: SuccessCriteria, where: str
) -> list[Criterion]:
    """One criterion per threshold of the spec's success criteria, on ``values`` (the test
    metrics at training, the realized ones in shadow)."""
    checks = []
    for name, bound in criteria.thresholds.items():
        value = values[name]
        ok = (bound.min is None or value >= bound.min) and (bound.max is None or value <= bound.max)
        want = " and ".join(
            s
            for s in (
                f">= {bound.min}" if bound.min is not None else "",
                f"<= {bound.max}" if bound.max is not None else "",
            )
            if s
        )
        checks.append(
            Criterion(f"threshold_{name}", ok, f"{where} {name} {value:.4f}, required {want}")
        )
    return checks


def decide(
    evaluation: Evaluation, criteria: SuccessCriteria, extra: tuple[Criterion, ...] = ()
) -> GateDecision:
    """Apply every success criterion, the baseline test and the champion test."""
    primary = get_metric(evaluation.primary)
    cand, base = evaluation.candidate.metrics, evaluation.baseline.metrics
    checks = threshold_criteria(
        {name: cand[name].value for name in criteria.thresholds}, criteria, "test"
    )
    rel = relative_improvement(primary, cand[primary.name].value, base[primary.name].value)
    checks.append(
        Criterion(
            "min_relative_improvement",
            rel >= criteria.min_relative_improvement,
            f"{rel:+.2%} vs best baseline '{evaluation.best_baseline}', required "
            f">= {criteria.min_relative_improvement:.2%}",
        )
    )
    diff = evaluation.vs_baseline
    checks.append(
        Criterion(
            "beats_baseline",
            diff.lower > 0,
            f"paired improvement in {primary.name} {diff.fmt()} ({_paired_test(evaluation)}); "
            "its CI must be above 0",
        )
    )
    fair = evaluation.fairness
    if fair is not None and fair.blocking:
        over = fair.exceeded()
        detail = "; ".join(
            f"{r['disparity']} over '{r['column']}' {r['value']:.4f} [{r['lower']:.4f}, "
            f"{r['upper']:.4f}]"
            for r in (over if over.height else fair.disparities).iter_rows(named=True)
        )
        checks.append(
            Criterion(
                "fairness",
                over.height == 0,
                f"{detail}; required <= {fair.bound} (fairness.max_disparity)",
            )
        )
    seasonal = evaluation.forecast.vs_seasonal_naive if evaluation.forecast else None
    if seasonal is not None and evaluation.best_baseline != "seasonal_naive":
        checks.append(
            Criterion(
                "beats_seasonal_naive",
                seasonal.improvement.lower > 0,
                f"improvement in {primary.name} over seasonal naive "
                f"{seasonal.improvement.fmt()} (Diebold-Mariano statistic "
                f"{seasonal.statistic:.2f}, p {seasonal.p_value:.4f}); its CI must be above 0",
            )
        )
    if evaluation.vs_champion is not None and evaluation.champion is not None:
        d = evaluation.vs_champion
        checks.append(
            Criterion(
                NOT_WORSE_THAN_CHAMPION,
                d.value >= 0,
                f"improvement over current champion '{evaluation.champion.name}' in "
                f"{primary.name} {d.fmt()} on the same test rows; must be >= 0",
            )
        )
        same = np.array_equal(evaluation.candidate.scores, evaluation.champion.scores)
        repeated = any(c.name == IDENTICAL_TO_CHAMPION for c in extra)
        if not repeated and (same or d.value == d.lower == d.upper == 0):
            how = "are identical to" if same else f"give exactly the same {primary.name} as"
            checks.append(
                Criterion(
                    IDENTICAL_TO_CHAMPION,
                    False,
                    f"the candidate's test predictions {how} those of the current champion "
                    f"'{evaluation.champion.name}' (improvement {d.fmt()}): replacing it would "
                    "change nothing",
                )
            )
    checks += extra
    return GateDecision(all(c.passed for c in checks), checks)


IDENTICAL_TO_CHAMPION = "differs_from_champion"
NOT_WORSE_THAN_CHAMPION = "not_worse_than_champion"


def same_training_as_champion(
    version: str, champion_tags: Mapping[str, str], trained_from: Mapping[str, str]
) -> Criterion | None:
    """A candidate trained from the same data, spec and code as the champion is a repeat of
    it (a retraining triggered twice for one window, say): a failing criterion, else None.
    Both sides are the lineage tags of their MLflow runs."""
    keys = (DATA_FINGERPRINT_TAG, SPEC_DIGEST_TAG, CODE_VERSION_TAG)
    if not all(champion_tags.get(k) and champion_tags.get(k) == trained_from.get(k) for k in keys):
        return None
    return Criterion(
        IDENTICAL_TO_CHAMPION,
        False,
        f"trained from the same data ({trained_from[DATA_FINGERPRINT_TAG]}), spec and code as the "
        f"current champion v{version}: a repeat of it, not a new model",
    )


def _paired_test(evaluation: Evaluation) -> str:
    if evaluation.forecast is not None:
        dm = evaluation.forecast.dm
        return (
            f"Diebold-Mariano on holdout losses, statistic {dm.statistic:.2f}, p {dm.p_value:.4f}"
        )
    return evaluation.paired_test


@dataclass(frozen=True)
class EvaluationOutcome:
    """What the evaluation report hands to promotion: results, decision, and their provenance."""

    evaluation: Evaluation
    decision: GateDecision
    lineage: Lineage
    selected: Trained
    compared_champion: str | None
    report_path: str
    model_card: str


def champion_not_comparable(version: str, error: str) -> Criterion:
    """A champion that cannot be scored on the new test data blocks promotion."""
    return Criterion(
        "champion_comparable",
        False,
        f"current champion v{version} could not be scored on this test data ({error}); if the "
        "schema change is intended, remove the 'champion' alias in the MLflow registry first",
    )


def saw_period(seen_until: str, period_start: object) -> bool:
    """Whether a model trained on rows up to ``seen_until`` (as logged, a string) saw rows at
    or after ``period_start``. Numeric times compare as numbers, dates and datetimes as their
    ISO text (both sides come from ``str()`` of the same column type)."""
    if isinstance(period_start, int | float):
        return float(seen_until) >= float(period_start)
    return seen_until >= str(period_start)


def champion_saw_test_period(version: str, seen_until: str, test_start: object) -> Criterion:
    """A champion that learned from the test period would be flattered by the comparison, and
    a candidate trained on older data than the champion should not replace it."""
    return Criterion(
        "champion_comparable",
        False,
        f"current champion v{version} was trained on data up to {seen_until}, inside this test "
        f"split (from {test_start}): this run's window is older than the champion's; retrain on "
        "a window that ends after the champion's (a newer ml_assets/window_end, or no tag)",
    )
