"""Promotion stage: register the selected candidate and move the champion alias to it only
when it passed every gate criterion."""

from typing import Any

import dagster as dg

from ml_assets.defs.resources import MlflowResource
from ml_assets.defs.shared import key
from ml_assets.lib import gate as gate_lib
from ml_assets.lib.names import (
    CODE_VERSION_TAG,
    DATA_FINGERPRINT_TAG,
    GATE_REASONS_TAG,
    PROMOTED_TAG,
    promotion_pool,
)
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.tracking import CHALLENGER_ALIAS, Tracker


def champion_asset(spec: MLSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=key(spec, "champion_model"),
        group_name=spec.name,
        kinds={"mlflow"},
        pool=promotion_pool(spec.name),
        ins={"evaluation_report": dg.AssetIn(key(spec, "evaluation_report"))},
        check_specs=[dg.AssetCheckSpec("promotion_gate", asset=key(spec, "champion_model"))],
        description=f"Registers the candidate as model '{spec.name}' and moves the 'champion' "
        "alias to it only if it passes every gate criterion",
    )
    def champion_model(
        context: dg.AssetExecutionContext,
        evaluation_report: gate_lib.EvaluationOutcome,
        mlflow: MlflowResource,
    ) -> Any:
        tracker = mlflow.tracker()
        if not tracker.tracking_uri.startswith("sqlite:") and not _pool_limited(context, spec):
            context.log.warning(
                f"promotions of '{spec.name}' are not serialized: the tracking store is not a "
                f"local SQLite file, and this Dagster instance sets no limit for the pool "
                f"{promotion_pool(spec.name)}; two runs promoting at once could both move the "
                "alias. Set `concurrency: pools: default_limit: 1` in dagster.yaml "
                "(deploy/team/dagster.yaml)"
            )
        # Everything that reads the champion, compares and moves the alias happens under the
        # lock; the results are handed to Dagster after it is released. Across machines, the
        # instance's one-slot pool for this step serializes promotions (deploy/README.md).
        with tracker.promotion_lock(spec.name):
            results = list(_promote(spec, context, evaluation_report, tracker))
        yield from results

    return champion_model


def _pool_limited(context: dg.AssetExecutionContext, spec: MLSpec) -> bool:
    """Whether the instance limits the spec's promotion pool (and can: SQLite or Postgres)."""
    storage = context.instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return False
    return storage.get_concurrency_info(promotion_pool(spec.name)).limit is not None


def _promote(
    spec: MLSpec,
    context: dg.AssetExecutionContext,
    outcome: gate_lib.EvaluationOutcome,
    tracker: Tracker,
) -> Any:
    """Register the candidate and move the alias if the gate says so (under the lock)."""
    decision, selected = outcome.decision, outcome.selected
    for left in tracker.resolve_pending(spec.name):
        context.log.warning(
            f"'{spec.name}' v{left} was left promoted=pending by a run that ended "
            "mid-promotion; resolved from the registry's alias"
        )
    if decision.repeats_champion and not spec.success_criteria.register_repeats:
        yield from _refuse_repeat(spec, context, outcome, tracker)
        return
    again = tracker.version_of_run(spec.name, selected.logged.run_id)
    if again is not None:
        yield from _already_registered(spec, context, outcome, tracker, again)
        return
    tags = {
        PROMOTED_TAG: "pending",
        DATA_FINGERPRINT_TAG: selected.data_fingerprint,
        CODE_VERSION_TAG: outcome.lineage.code_version,
    }
    version = tracker.register(spec.name, selected.logged, outcome.model_card, tags)
    current = tracker.champion_version(spec.name)
    current_version = current[0] if current else None
    reasons = decision.reasons
    if decision.promote and current_version != outcome.compared_champion:
        reasons = [
            f"champion moved from {_v(outcome.compared_champion)} to "
            f"{_v(current_version)} during this run; re-run to compare against it"
        ]
    promoted = not reasons
    who = f"Dagster run {context.run_id}"
    if promoted:
        _crown(spec, tracker, version, who, "passed every gate criterion")
        context.log.info(f"'{spec.name}' v{version} is now champion")
    else:
        context.log.error(f"'{spec.name}' v{version} NOT promoted: " + "; ".join(reasons))
    said = "; ".join(reasons) or "all criteria passed"
    if not promoted and _challenger(spec, decision, reasons):
        why = f"passed every absolute criterion; {said}"
        tracker.set_alias(spec.name, CHALLENGER_ALIAS, version, "challenger", who, why[:1000])
        said += f"; now the {CHALLENGER_ALIAS}, scored in the champion's shadow every day"
        context.log.warning(f"'{spec.name}' v{version} is the {CHALLENGER_ALIAS} from now on")
    # The registry tells why, on the version itself, not only on its training run.
    tracker.client.set_model_version_tag(spec.name, version, PROMOTED_TAG, str(promoted))
    tracker.client.set_model_version_tag(spec.name, version, GATE_REASONS_TAG, said)
    tracker.log_evaluation(
        selected.logged.run_id,
        {},
        {
            PROMOTED_TAG: str(promoted),
            "registered_version": version,
            GATE_REASONS_TAG: said,
        },
        {},
    )
    champion_now = version if promoted else current_version
    description = "promoted to champion" if promoted else "NOT promoted: " + "; ".join(reasons)
    yield from _results(spec, outcome, version, promoted, champion_now, reasons, description)


def _crown(spec: MLSpec, tracker: Tracker, version: str, who: str, why: str) -> None:
    """``version`` becomes the champion; a challenger in the shadow of the one it replaces is
    retired (it was compared with a champion that is gone)."""
    tracker.set_champion(spec.name, version, who, why)
    challenger = tracker.alias_version(spec.name, CHALLENGER_ALIAS)
    if challenger is None:
        return
    if challenger == version:  # made the challenger meanwhile (by hand): now the champion
        action, said = "promoted", f"v{version} is now the champion"
    else:
        action, said = "retired", f"v{version} was promoted by the gate"
    tracker.remove_alias(spec.name, CHALLENGER_ALIAS, action, who, said, challenger)


def _challenger(spec: MLSpec, decision: gate_lib.GateDecision, reasons: list[str]) -> bool:
    """A version refused only for its comparison with the champion on the test rows becomes
    the challenger, when the spec scores daily (its shadow needs the days to come)."""
    return (
        spec.monitoring is not None
        and reasons == decision.reasons
        and decision.fails_only_champion_comparison
    )


def _v(version: str | None) -> str:
    return f"v{version}" if version else "no champion"


def _already_registered(
    spec: MLSpec,
    context: dg.AssetExecutionContext,
    outcome: gate_lib.EvaluationOutcome,
    tracker: Tracker,
    version: str,
) -> Any:
    """champion_model re-run for a candidate run already registered: no second version; the
    registry's record of that version stands."""
    current = tracker.champion_version(spec.name)
    champion_now = current[0] if current else None
    run_tags = tracker.client.get_run(outcome.selected.logged.run_id).data.tags
    interrupted = PROMOTED_TAG not in run_tags  # registered, then killed before the gate ended
    if (
        interrupted
        and champion_now != version
        and outcome.decision.promote
        and champion_now == outcome.compared_champion
    ):
        # Same decision, same champion as when it was made: finish that promotion.
        _crown(
            spec,
            tracker,
            version,
            f"Dagster run {context.run_id}",
            "passed every gate criterion (an interrupted promotion, finished by a re-run)",
        )
        tracker.client.set_model_version_tag(spec.name, version, PROMOTED_TAG, "True")
        tracker.client.set_model_version_tag(
            spec.name, version, GATE_REASONS_TAG, "all criteria passed (finished by a re-run)"
        )
        champion_now = version
        context.log.info(f"'{spec.name}' v{version} is now champion (interrupted promotion)")
    promoted = champion_now == version
    reasons = [] if promoted else [run_tags.get(GATE_REASONS_TAG) or "not the champion"]
    if interrupted:
        tracker.log_evaluation(
            outcome.selected.logged.run_id,
            {},
            {
                PROMOTED_TAG: str(promoted),
                "registered_version": version,
                GATE_REASONS_TAG: "; ".join(reasons) or "all criteria passed",
            },
            {},
        )
    text = (
        f"candidate run {outcome.selected.logged.run_id} is already registered as v{version}; "
        f"not registered again. v{version} is {'the champion' if promoted else 'NOT champion'}"
    )
    context.log.warning(f"'{spec.name}': {text}")
    yield from _results(spec, outcome, version, promoted, champion_now, reasons, text)


def _refuse_repeat(
    spec: MLSpec,
    context: dg.AssetExecutionContext,
    outcome: gate_lib.EvaluationOutcome,
    tracker: Tracker,
) -> Any:
    """A candidate that repeats the champion: not registered, not promoted, said loudly."""
    current = tracker.champion_version(spec.name)
    champion_now = current[0] if current else None
    reasons = outcome.decision.reasons
    text = "NOT registered, NOT promoted: " + "; ".join(reasons)
    context.log.error(f"'{spec.name}' candidate {text}")
    tracker.log_evaluation(
        outcome.selected.logged.run_id,
        {},
        {PROMOTED_TAG: "False", GATE_REASONS_TAG: "; ".join(reasons)},
        {},
    )
    yield from _results(spec, outcome, None, False, champion_now, reasons, text)


def _results(
    spec: MLSpec,
    outcome: gate_lib.EvaluationOutcome,
    version: str | None,
    promoted: bool,
    champion_now: str | None,
    reasons: list[str],
    description: str,
) -> Any:
    """The champion_model output and its promotion_gate check result."""
    primary = spec.primary_metric
    yield dg.Output(
        {
            "registered_version": version,
            "promoted": promoted,
            "champion_version": champion_now,
            "reasons": reasons,
        },
        metadata={
            "registered_model": spec.name,
            "registered_version": version or "none (repeats the champion)",
            "promoted": promoted,
            "champion_version": str(champion_now),
            "reasons": "; ".join(reasons) or "all criteria passed",
            f"test_{primary}": round(outcome.evaluation.candidate.metrics[primary].value, 4),
            "model_card": dg.MetadataValue.md(outcome.model_card),
        },
    )
    yield dg.AssetCheckResult(
        check_name="promotion_gate",
        passed=promoted,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "gate": dg.MetadataValue.md(outcome.decision.markdown()),
            "champion_version": str(champion_now),
        },
    )
