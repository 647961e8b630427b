"""The rollback_<spec> job: the CLI's `rollback` as a Dagster run (launchpad or
`dagster job execute -c`), holding the spec's promotion slot while it moves the alias."""

import dagster as dg

from ml_assets.defs.resources import MlflowResource
from ml_assets.lib import names
from ml_assets.lib.alias_history import RollbackError, RollbackIncomplete
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.tracking import CHAMPION_ALIAS


class RollbackConfig(dg.Config):
    reason: str  # recorded with the move
    to: int | None = None  # the version; unset: where the champion was before
    who: str | None = None  # unset: the run's dagster/user tag if it has one, else the run
    # The version rolled back from becomes the challenger, scored beside the champion daily.
    keep_as_challenger: bool = False


def rollback_job(spec: MLSpec) -> dg.JobDefinition:
    @dg.op(
        name=f"{spec.name}__rollback_champion",
        pool=names.promotion_pool(spec.name),
        description=f"Moves models:/{spec.name}@{CHAMPION_ALIAS} back to an earlier version",
    )
    def rollback_champion(
        context: dg.OpExecutionContext, config: RollbackConfig, mlflow: MlflowResource
    ) -> None:
        if config.keep_as_challenger and spec.monitoring is None:
            raise dg.Failure(
                description=f"'{spec.name}' has no monitoring section: nothing would score a "
                "challenger; set keep_as_challenger: false",
                allow_retries=False,
            )
        tracker = mlflow.tracker()
        who = config.who or context.run.tags.get("dagster/user") or f"Dagster run {context.run_id}"
        try:
            move = tracker.rollback(
                spec.name,
                None if config.to is None else str(config.to),
                config.reason,
                who,
                shadow=config.keep_as_challenger,
            )
        except RollbackError as exc:
            said = "done in part" if isinstance(exc, RollbackIncomplete) else "refused"
            raise dg.Failure(
                description=f"rollback of '{spec.name}' {said}: {exc}", allow_retries=False
            ) from exc
        context.log.info(
            f"'{spec.name}' {CHAMPION_ALIAS}: v{move.from_version} -> v{move.to_version} "
            f"(by {move.who}: {move.why})"
        )

    # No spec tag: a rollback must not wait in the queue behind a training run of its spec
    # (which could promote meanwhile); the promotion pool alone keeps the two apart.
    @dg.job(
        name=names.rollback_job(spec.name),
        description=f"Roll '{spec.name}' back: config reason (and optionally to, who)",
    )
    def rollback_spec() -> None:
        rollback_champion()

    return rollback_spec
