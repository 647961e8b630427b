"""A compressed run of the production loop on the synthetic churn stream.

Days arrive one at a time. Each day the real ``score_<spec>_on_arrival`` sensor is evaluated
and the ``score_<spec>`` runs it requests materialize the day's ``predictions`` and
``drift_report`` partitions; then the real ``retrain_<spec>_on_drift`` sensor is evaluated
against the same instance, and any run it requests is executed as ``train_<spec>``. Every run
carries the request's tags, run key and sensor name, as the daemon launches it, so a daemon
that takes over afterwards launches none of them again. At the end, the real weekly
safety-net schedule is evaluated and its run executed. Used by ``make demo`` and the
end-to-end monitoring test; under ``dagster dev`` the daemon plays this role.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from ml_assets.lib import names
from ml_assets.lib.churn import ChurnStream


@dataclass(frozen=True)
class DayOutcome:
    """What happened on one simulated day."""

    day: str
    drift: dict[str, Any]
    sensor: str
    requested: dg.RunRequest | None = None
    retrain: dict[str, Any] | None = None
    shadow: dict[str, Any] = field(default_factory=dict)  # shadow_comparison's metadata


@dataclass
class Simulation:
    """The outcome of a simulated stretch of days."""

    days: list[DayOutcome] = field(default_factory=list)
    weekly: dict[str, Any] | None = None
    cursor: str | None = None  # the sensor's cursor after the last day, as the daemon keeps it

    @property
    def requests(self) -> list[dg.RunRequest]:
        return [d.requested for d in self.days if d.requested is not None]


def stage_metadata(result: dg.ExecuteInProcessResult, stage: str) -> dict[str, Any]:
    """Plain values of the metadata a run recorded for the asset ``<spec>/<stage>``."""
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.asset_key.path[-1] == stage:
            return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    return {}


def _quiet(log_level: str) -> dict[str, Any]:
    """Run config for the console logger; the runs' full logs stay in the instance."""
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def _train(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    spec: str,
    tags: dict[str, str],
    log_level: str,
) -> dict[str, Any]:
    """Run ``train_<spec>`` with ``tags``; the champion_model metadata says what the gate did."""
    result = defs.resolve_job_def(names.train_job(spec)).execute_in_process(
        instance=instance, tags=tags, raise_on_error=False, run_config=_quiet(log_level)
    )
    outcome = stage_metadata(result, "champion_model")
    raw = stage_metadata(result, "raw_data")
    report = stage_metadata(result, "evaluation_report")
    return {
        "run_id": result.run_id,
        "success": result.success,
        "window": f"{raw.get('window_start')} .. {raw.get('window_end')}",
        "vs_champion": report.get("improvement_vs_champion"),
        **outcome,
    }


def _launch_tags(sensor: dg.SensorDefinition, request: dg.RunRequest) -> dict[str, str]:
    """The tags of a run the daemon launches for ``request``."""
    return {
        **dict(request.tags),
        names.DAGSTER_RUN_KEY_TAG: str(request.run_key),
        names.DAGSTER_SENSOR_TAG: sensor.name,
    }


def _score(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    arrival: dg.SensorDefinition,
    spec: str,
    day: str,
    log_level: str,
) -> dg.ExecuteInProcessResult:
    """Evaluate the arrival sensor and run the scoring it requests; the result for ``day``."""
    tick = arrival.evaluate_tick(
        dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
    )
    runs = {}
    for request in tick.run_requests or []:
        partition = str(request.partition_key)
        runs[partition] = defs.resolve_job_def(names.score_job(spec)).execute_in_process(
            instance=instance,
            partition_key=partition,
            tags=_launch_tags(arrival, request),
            raise_on_error=False,
            run_config=_quiet(log_level),
        )
        if not runs[partition].success:
            raise RuntimeError(
                f"{names.score_job(spec)} failed for {partition} (run {runs[partition].run_id})"
            )
    if day not in runs:
        raise RuntimeError(
            f"{arrival.name} did not request {day} after its file arrived: {tick.skip_message}"
        )
    return runs[day]


def _line(outcome: DayOutcome) -> str:
    d = outcome.drift
    realized = next(
        (v for k, v in d.items() if k.startswith("realized_") and k.endswith("_ci")), "n/a"
    )
    of = str(d.get("prediction_psi_of", "score"))
    text = (
        f"{outcome.day}  model v{d.get('model_version')}  drifted "
        f"{float(d.get('drifted_share', 0.0)):4.0%}  max PSI {float(d.get('max_psi', 0.0)):.3f}  "
        f"prediction PSI {float(d.get('prediction_psi', 0.0)):.3f}"
        f"{'' if of == 'score' else f' ({of})'}  realized {realized}  "
        f"retrain recommended: {d.get('retrain_recommended')}\n    sensor: {outcome.sensor}"
    )
    if outcome.shadow:
        text += f"\n    shadow: {outcome.shadow.get('summary')}: {outcome.shadow.get('outcome')}"
    if outcome.retrain is not None:
        text += "\n    " + _train_line(outcome.retrain)
    return text


def _train_line(outcome: dict[str, Any]) -> str:
    if not outcome.get("success"):
        return f"train run {outcome['run_id']} FAILED (see the Dagster UI)"
    verdict = (
        "PROMOTED to champion"
        if outcome.get("promoted")
        else f"NOT promoted, champion stays v{outcome.get('champion_version')}: "
        f"{outcome.get('reasons')}"
    )
    registered = outcome.get("registered_version")
    return (
        f"train on days {outcome['window']}: "
        f"{f'registered v{registered}' if registered else 'not registered'}, "
        f"test improvement vs champion {outcome.get('vs_champion')}: {verdict}"
    )


def simulate(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    stream: ChurnStream,
    incoming: Path,
    days: range,
    spec: str = "churn",
    weekly_retrain: bool = True,
    say: Callable[[str], object] = lambda _: None,
    log_level: str = "INFO",
) -> Simulation:
    """Let ``days`` of ``stream`` arrive in ``incoming`` one by one, scoring, monitoring and
    retraining as the definitions' own job, sensor and schedule decide."""
    arrival = defs.resolve_sensor_def(names.scoring_sensor(spec))
    sensor = defs.resolve_sensor_def(names.drift_sensor(spec))
    cursor: str | None = None
    out = Simulation()
    for index in days:
        stream.write(incoming, range(index, index + 1))
        day = stream.day(index).isoformat()
        scored = _score(defs, instance, arrival, spec, day, log_level)
        tick = sensor.evaluate_tick(
            dg.build_sensor_context(
                instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
            )
        )
        cursor = out.cursor = tick.cursor or cursor
        request = tick.run_requests[0] if tick.run_requests else None
        retrain = (
            _train(defs, instance, spec, _launch_tags(sensor, request), log_level)
            if request
            else None
        )
        message = (
            f"requested {names.train_job(spec)} (run key {request.run_key})"
            if request
            else tick.skip_message or "no request"
        )
        outcome = DayOutcome(
            day,
            stage_metadata(scored, "drift_report"),
            message,
            request,
            retrain,
            stage_metadata(scored, "shadow_comparison"),
        )
        out.days.append(outcome)
        say(_line(outcome))
    if weekly_retrain and days:
        out.weekly = _weekly(defs, instance, spec, stream.day(days[-1]), log_level)
        say("weekly safety-net retrain: " + _train_line(out.weekly))
    return out


def _weekly(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    spec: str,
    last_day: dt.date,
    log_level: str,
) -> dict[str, Any]:
    """Evaluate the weekly retraining schedule on the morning after ``last_day`` and run it."""
    schedule = defs.resolve_schedule_def(names.weekly_retrain_schedule(spec))
    when = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(3), tzinfo=dt.UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
    requests = schedule.evaluate_tick(context).run_requests or []
    tags = {**(dict(requests[0].tags) if requests else {}), names.TRIGGER_TAG: "weekly"}
    return _train(defs, instance, spec, tags, log_level)
