"""`python -m ml_assets.cli summary`: per spec, the champion (or why there is none), the
challenger and its shadow comparison, and the champion's last moves."""

from __future__ import annotations

import argparse
import os
import sys

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion

from ml_assets.defs.evaluation import REPORT_ARTIFACT
from ml_assets.defs.resources import default_data_dir, default_tracking_uri
from ml_assets.lib import names
from ml_assets.lib.alias_history import AliasMove, moves
from ml_assets.lib.shadow import MONITORING_KIND
from ml_assets.lib.spec import MLSpec, load_all_specs
from ml_assets.lib.storage import storage_path
from ml_assets.lib.tracking import CHALLENGER_ALIAS, CHAMPION_ALIAS, Tracker


def spec_summary(spec: MLSpec, tracker: Tracker) -> list[str]:
    """Lines describing the champion of ``spec`` (or why there is none), the latest registered
    version when it is another, and for a monitored spec its challenger, the newest shadow
    comparison and the champion's last moves."""
    client: MlflowClient = tracker.client
    versions = {str(v.version): v for v in client.search_model_versions(f"name='{spec.name}'")}
    if not versions:
        return [
            f"{spec.name}: no registered version yet; run `dagster job execute -m "
            f"ml_assets.definitions -j {names.train_job(spec.name)}`"
        ]
    latest = versions[max(versions, key=int)]
    champion = tracker.champion_version(spec.name)
    shown = versions[champion[0]] if champion else latest
    run = client.get_run(shown.run_id)
    m, tags, p = run.data.metrics, run.data.tags, spec.primary_metric
    history = moves(client, spec.name)
    lines = [_head(spec, client, champion, latest, tags.get(names.MODEL_NAME_TAG), history)]
    report_url = tracker.artifact_url(
        _mlflow_ui(), run.info.experiment_id, run.info.run_id, REPORT_ARTIFACT
    )
    lines += [
        f"  test {p}: {m.get(f'test_{p}', float('nan')):.4f} "
        f"{spec.evaluation.confidence:.0%} CI "
        f"[{m.get(f'test_{p}_ci_lower', float('nan')):.4f}, "
        f"{m.get(f'test_{p}_ci_upper', float('nan')):.4f}]",
        f"  best baseline ({tags.get(names.BEST_BASELINE_TAG)}) test {p}: "
        f"{m.get(f'baseline_test_{p}', float('nan')):.4f}",
        f"  report: {report_url} (under `make ui`; file {tags.get(names.REPORT_PATH_TAG)})",
        f"  registry: {f'models:/{spec.name}@{CHAMPION_ALIAS}' if champion else 'no champion'}; "
        f"data {tags.get(names.DATA_FINGERPRINT_TAG)}, code {tags.get(names.CODE_VERSION_TAG)}",
    ]
    forecast = storage_path(default_data_dir()) / spec.name / "forecast.parquet"
    if spec.task == "forecasting" and forecast.exists():
        lines.append(f"  next {spec.forecast.horizon if spec.forecast else ''} periods: {forecast}")
    if spec.monitoring is not None:
        lines += _in_use(spec, tracker, history)
    return lines


def _head(
    spec: MLSpec,
    client: MlflowClient,
    champion: tuple[str, str] | None,
    latest: ModelVersion,
    model: str | None,
    history: list[AliasMove],
) -> str:
    latest_tags = client.get_run(latest.run_id).data.tags
    if champion is None:
        return (
            f"{spec.name}: v{latest.version} ({latest_tags.get(names.MODEL_NAME_TAG)}) NOT "
            f"PROMOTED, there is no champion. Why: "
            f"{latest_tags.get(names.GATE_REASONS_TAG, 'gate not applied')}"
        )
    onto = [h for h in history if h.alias == CHAMPION_ALIAS and h.to_version == champion[0]]
    how = {"rollback": "by a rollback", "shadow_promotion": "promoted from the shadow"}.get(
        onto[-1].action if onto else "promotion", "promoted"
    )
    head = f"{spec.name}: CHAMPION is v{champion[0]} ({model}), {how}"
    if str(latest.version) == champion[0]:
        return head
    # The newest move of an alias onto or off it says what became of it since its gate.
    about = [h for h in history if str(latest.version) in (h.from_version, h.to_version)]
    why = (
        f"last alias move: {about[-1].line()}"
        if about
        else latest.tags.get(names.GATE_REASONS_TAG)
        or latest_tags.get(names.GATE_REASONS_TAG, "gate not applied")
    )
    return (
        f"{head}; the latest, v{latest.version} "
        f"({latest_tags.get(names.MODEL_NAME_TAG)}), is not. Why: {why}"
    )


def _in_use(spec: MLSpec, tracker: Tracker, history: list[AliasMove]) -> list[str]:
    """The challenger, the newest shadow comparison and the champion's last moves."""
    challenger = tracker.alias_version(spec.name, CHALLENGER_ALIAS)
    set_by = [h for h in history if h.alias == CHALLENGER_ALIAS and h.to_version == challenger]
    lines = [
        f"  challenger: v{challenger} (by {set_by[-1].who}: {set_by[-1].why})"
        if challenger and set_by
        else f"  challenger: {f'v{challenger}' if challenger else 'none'}"
    ]
    newest = _newest_shadow_run(tracker, spec.name)
    if newest is not None:
        t = newest.data.tags
        lines.append(f"  shadow {t.get('day')}: {t.get('summary')}; {t.get('outcome')}")
    champion_moves = [h for h in history if h.alias == CHAMPION_ALIAS]
    rollbacks = [h for h in champion_moves if h.action == "rollback"]
    lines.append(
        f"  champion moves: {len(champion_moves)} recorded (`python -m ml_assets.cli history "
        f"{spec.name}`)"
        + (f"; last rollback: {rollbacks[-1].line()}" if rollbacks else "; no rollback")
    )
    return lines


def _newest_shadow_run(tracker: Tracker, name: str) -> Run | None:
    experiment = tracker.client.get_experiment_by_name(f"{name}-monitoring")
    if experiment is None:
        return None
    found = tracker.client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.kind = '{MONITORING_KIND}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0] if found else None


def _mlflow_ui() -> str:
    return os.environ.get("ML_ASSETS_MLFLOW_UI", "http://127.0.0.1:5000")


def summary_command(args: argparse.Namespace) -> int:
    tracker = Tracker(default_tracking_uri())
    found = load_all_specs(os.environ.get("ML_ASSETS_SPECS"))
    for spec in found.specs:
        sys.stdout.write("\n".join(spec_summary(spec, tracker)) + "\n")
    for path, error in found.broken.items():
        sys.stdout.write(f"BROKEN SPEC {path}: not loaded, its job fails. {error}\n")
    return 1 if found.broken else 0
