"""Command line helpers: ``python -m ml_assets.cli summary`` prints the per-spec outcome."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mlflow import MlflowClient

from ml_assets.defs.resources import default_data_dir, default_tracking_uri
from ml_assets.lib.spec import MLSpec, discover_specs
from ml_assets.lib.tracking import CHAMPION_ALIAS, Tracker


def spec_summary(spec: MLSpec, tracker: Tracker) -> list[str]:
    """Lines describing the latest registered candidate of ``spec`` and the champion."""
    client: MlflowClient = tracker.client
    versions = client.search_model_versions(f"name='{spec.name}'")
    if not versions:
        return [
            f"{spec.name}: no registered version yet; run `dagster job execute -m "
            f"ml_assets.definitions -j train_{spec.name}`"
        ]
    latest = max(versions, key=lambda v: int(v.version))
    run = client.get_run(latest.run_id)
    m, tags, p = run.data.metrics, run.data.tags, spec.primary_metric
    champion = tracker.champion_version(spec.name)
    if tags.get("promoted") == "True":
        head = f"{spec.name}: CHAMPION is v{latest.version} ({tags.get('model_name')}), promoted"
    else:
        stays = f"champion stays v{champion[0]}" if champion else "there is no champion"
        head = (
            f"{spec.name}: v{latest.version} ({tags.get('model_name')}) NOT PROMOTED, "
            f"{stays}. Why: {tags.get('gate_reasons', 'gate not applied')}"
        )
    lines = [
        head,
        f"  test {p}: {m.get(f'test_{p}', float('nan')):.4f} "
        f"{spec.evaluation.confidence:.0%} CI "
        f"[{m.get(f'test_{p}_ci_lower', float('nan')):.4f}, "
        f"{m.get(f'test_{p}_ci_upper', float('nan')):.4f}]",
        f"  best baseline ({tags.get('best_baseline')}) test {p}: "
        f"{m.get(f'baseline_test_{p}', float('nan')):.4f}",
        f"  report: {tags.get('report_path')}",
        f"  registry: {f'models:/{spec.name}@{CHAMPION_ALIAS}' if champion else 'no champion'}; "
        f"data {tags.get('data_fingerprint')}, code {tags.get('code_version')}",
    ]
    forecast = Path(default_data_dir()) / spec.name / "forecast.parquet"
    if spec.task == "forecasting" and forecast.exists():
        lines.append(f"  next {spec.forecast.horizon if spec.forecast else ''} periods: {forecast}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_assets.cli")
    parser.add_argument("command", choices=["summary"])
    parser.parse_args(argv)
    tracker = Tracker(default_tracking_uri())
    for spec in discover_specs(os.environ.get("ML_ASSETS_SPECS")):
        sys.stdout.write("\n".join(spec_summary(spec, tracker)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
