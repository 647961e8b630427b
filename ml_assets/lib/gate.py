"""The promotion gate: a candidate becomes champion only when it earns it."""

from __future__ import annotations

from dataclasses import dataclass

from ml_assets.lib.evaluation import Evaluation, Lineage
from ml_assets.lib.metrics import get_metric, relative_improvement
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
    def reasons(self) -> list[str]:
        """Why the candidate was not promoted (empty when it was)."""
        return [f"{c.name}: {c.detail}" for c in self.criteria if not c.passed]

    def markdown(self) -> str:
        lines = ["| criterion | passed | detail |", "|---|---|---|"]
        lines += [
            f"| {c.name} | {'yes' if c.passed else '**NO**'} | {c.detail} |" for c in self.criteria
        ]
        return "\n".join(lines)


def decide(
    evaluation: Evaluation, criteria: SuccessCriteria, extra: tuple[Criterion, ...] = ()
) -> GateDecision:
    """Apply every success criterion, the baseline test and the champion test."""
    primary = get_metric(evaluation.primary)
    cand, base = evaluation.candidate.metrics, evaluation.baseline.metrics
    checks: list[Criterion] = []
    for name, bound in criteria.thresholds.items():
        value = cand[name].value
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
            Criterion(f"threshold_{name}", ok, f"test {name} {value:.4f}, required {want}")
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
                "not_worse_than_champion",
                d.value >= 0,
                f"improvement over current champion '{evaluation.champion.name}' in "
                f"{primary.name} {d.fmt()} on the same test rows; must be >= 0",
            )
        )
    checks += extra
    return GateDecision(all(c.passed for c in checks), checks)


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
