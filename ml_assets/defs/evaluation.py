"""Evaluation stage: the validation-selected candidate, every baseline and the current champion
scored once on the test split, with CIs, paired tests, the HTML report and the gate decision."""

import dataclasses
from typing import Any

import dagster as dg
import polars as pl

from ml_assets.defs.resources import ArtifactStore, MlflowResource, write_text_atomic
from ml_assets.defs.shared import ALL_SPLITS, key
from ml_assets.lib import cross_validation as cv_lib
from ml_assets.lib import data as data_lib
from ml_assets.lib import evaluation as eval_lib
from ml_assets.lib import gate as gate_lib
from ml_assets.lib import report as report_lib
from ml_assets.lib import splits as split_lib
from ml_assets.lib.models import Model
from ml_assets.lib.names import (
    BEST_BASELINE_TAG,
    CODE_VERSION_TAG,
    DATA_FINGERPRINT_TAG,
    REPORT_PATH_TAG,
    SEEN_UNTIL_TAG,
    SPEC_DIGEST_TAG,
)
from ml_assets.lib.provenance import code_version
from ml_assets.lib.records import Trained
from ml_assets.lib.spec import MLSpec
from ml_assets.lib.tasks import task_for
from ml_assets.lib.tracking import ChampionLoadError, Tracker

REPORT_ARTIFACT = "evaluation_report.html"


def _champion_for_comparison(
    spec: MLSpec,
    tracker: Tracker,
    splits: pl.DataFrame,
    selected: Trained,
    context: dg.AssetExecutionContext,
) -> tuple[Model | None, str | None, tuple[gate_lib.Criterion, ...]]:
    """The current champion made comparable by the task, the version compared, and the gate
    criteria that block promotion: a champion that cannot be compared, or a candidate that
    repeats it (same data, spec and code)."""
    try:
        ref = tracker.load_champion(spec.name)
    except ChampionLoadError as exc:
        context.log.error(str(exc))
        return None, exc.version, (gate_lib.champion_not_comparable(exc.version, exc.reason),)
    if ref is None:
        return None, None, ()
    champion_tags = tracker.client.get_run(ref.run_id).data.tags
    seen = champion_tags.get(SEEN_UNTIL_TAG)
    comparison = task_for(spec).compare_champion(spec, ref.version, ref.model, seen, splits)
    if comparison.problem:
        context.log.error(comparison.problem)
    trained_from = {
        DATA_FINGERPRINT_TAG: selected.data_fingerprint,
        SPEC_DIGEST_TAG: spec.digest(),
        CODE_VERSION_TAG: code_version(),
    }
    repeat = gate_lib.same_training_as_champion(ref.version, champion_tags, trained_from)
    if repeat is not None:
        context.log.error(f"'{spec.name}': {repeat.detail}")
    return comparison.model, ref.version, (*comparison.criteria, *([repeat] if repeat else []))


class StaleModelError(RuntimeError):
    """Models trained on other splits than the ones being evaluated."""


def _refuse_stale_models(spec: MLSpec, splits: pl.DataFrame, trained: list[Trained]) -> None:
    current = split_lib.training_fingerprint(splits)
    stale = [t.model.name for t in trained if t.data_fingerprint != current]
    if stale:
        raise StaleModelError(
            f"spec '{spec.name}': models {stale} were trained on data with another fingerprint "
            f"than the current splits ({current}); evaluating them could score them on rows "
            f"they learned from. Re-materialize the whole group: run job train_{spec.name}"
        )


def evaluation_asset(spec: MLSpec) -> dg.AssetsDefinition:
    families = spec.families
    ins = {
        "splits": dg.AssetIn(key(spec, "splits"), metadata=ALL_SPLITS),
        "baselines": dg.AssetIn(key(spec, "baselines")),
        **{f"candidate_{f}": dg.AssetIn(key(spec, f"candidate_{f}")) for f in families},
    }

    @dg.asset(
        key=key(spec, "evaluation_report"),
        group_name=spec.name,
        kinds={"html", "mlflow"},
        ins=ins,
        description="Test-split evaluation of the validation-selected candidate, every baseline "
        "and the current champion: metrics with bootstrap CIs, paired tests, plots, gate decision",
    )
    def evaluation_report(
        context: dg.AssetExecutionContext,
        mlflow: MlflowResource,
        artifacts: ArtifactStore,
        **inputs: Any,
    ) -> dg.Output[gate_lib.EvaluationOutcome]:
        splits: pl.DataFrame = inputs["splits"]
        baselines: list[Trained] = inputs["baselines"]
        candidates = {
            inputs[f"candidate_{f}"].model.name: inputs[f"candidate_{f}"] for f in families
        }
        _refuse_stale_models(spec, splits, [*baselines, *candidates.values()])
        test = splits.filter(pl.col(data_lib.SPLIT) == "test")
        primary = spec.primary_metric
        order = spec.all_metrics
        selected = candidates[
            eval_lib.select_best({n: t.validation for n, t in candidates.items()}, order)
        ]
        best_base = eval_lib.select_best({b.model.name: b.validation for b in baselines}, order)
        tracker = mlflow.tracker()
        champion, champion_version, extra = _champion_for_comparison(
            spec, tracker, splits, selected, context
        )
        ev = task_for(spec).evaluate(spec, splits, selected, baselines, best_base, champion)
        ev = _with_selection(ev, [*candidates.values(), *baselines])
        decision = gate_lib.decide(ev, spec.success_criteria, extra)
        lineage = eval_lib.Lineage(
            spec.name,
            spec.digest(),
            code_version(),
            selected.data_fingerprint,
            ev.test_fingerprint,
            selected.logged.run_id,
            spec.split_strategy,
            _split_rows(context, spec, test.height),
        )
        run_url = tracker.run_url(
            mlflow.ui_url, selected.logged.experiment_id, selected.logged.run_id
        )
        dagster_url = f"{mlflow.dagster_ui_url.rstrip('/')}/runs/{context.run_id}"
        html = report_lib.render_html(
            ev, decision, lineage, {"MLflow run": run_url, "Dagster run": dagster_url}
        )
        path = artifacts.report_path(spec.name, context.run_id)
        write_text_atomic(path, html)
        card = report_lib.model_card(ev, decision, lineage, spec.description)
        cand, base = ev.candidate.metrics[primary], ev.baseline.metrics[primary]
        tracker.log_evaluation(
            selected.logged.run_id,
            metrics=eval_lib.tracking_metrics(ev),
            tags={
                "test_data_fingerprint": ev.test_fingerprint,
                BEST_BASELINE_TAG: best_base,
                "gate_passed": str(decision.promote),
                REPORT_PATH_TAG: str(path),
            },
            files={REPORT_ARTIFACT: html, "model_card.md": card},
        )
        outcome = gate_lib.EvaluationOutcome(
            ev, decision, lineage, selected, champion_version, str(path), card
        )
        report_url = tracker.artifact_url(
            mlflow.ui_url, selected.logged.experiment_id, selected.logged.run_id, REPORT_ARTIFACT
        )
        return dg.Output(
            outcome,
            metadata={
                "summary": dg.MetadataValue.md(report_lib.markdown_table(ev.summary_table())),
                "selected_candidate": selected.model.name,
                "best_baseline": best_base,
                f"test_{primary}": round(cand.value, 4),
                f"test_{primary}_ci": f"[{cand.lower:.4f}, {cand.upper:.4f}]",
                f"baseline_test_{primary}": round(base.value, 4),
                "improvement_vs_baseline": ev.vs_baseline.fmt(),
                "improvement_vs_champion": f"{ev.vs_champion.fmt()} over v{champion_version}"
                if ev.vs_champion is not None
                else "no champion compared",
                **_selection_metadata(ev),
                "gate": dg.MetadataValue.md(decision.markdown()),
                "gate_passed": decision.promote,
                # Opens in the MLflow UI's artifact view; the file itself is beside the data.
                "report": dg.MetadataValue.url(report_url),
                "report_file": dg.MetadataValue.path(str(path)),
                "mlflow_run": dg.MetadataValue.url(run_url),
                "data_fingerprint": lineage.data_fingerprint,
                "test_fingerprint": ev.test_fingerprint,
                "code_version": lineage.code_version,
            },
        )

    return evaluation_report


def _with_selection(ev: eval_lib.Evaluation, trained: list[Trained]) -> eval_lib.Evaluation:
    """``ev`` with the cross-validation scores that chose its candidate, when folds did."""
    scored = {t.model.name: (t.model.role, t.cv) for t in trained if t.cv is not None}
    if not scored:
        return ev
    table = cv_lib.selection_table(ev.primary, scored)  # type: ignore[arg-type]
    kind = str(trained[0].model.params.get("cv_folds_made", ""))
    return dataclasses.replace(ev, selection=table, selection_folds=kind)


def _selection_metadata(ev: eval_lib.Evaluation) -> dict[str, Any]:
    """The cross-validation that chose the candidate and its fairness, when the spec has them."""
    out: dict[str, Any] = {}
    if ev.selection is not None:
        out["cross_validation"] = dg.MetadataValue.md(report_lib.markdown_table(ev.selection))
    if ev.fairness is not None:
        fair = ev.fairness
        out["fairness_disparities"] = dg.MetadataValue.md(
            report_lib.markdown_table(fair.disparities)
        )
        out["fairness_groups"] = dg.MetadataValue.md(report_lib.markdown_table(fair.groups))
        out["fairness_within_bound"] = fair.exceeded().height == 0
    return out


def _split_rows(context: dg.AssetExecutionContext, spec: MLSpec, test_rows: int) -> dict[str, int]:
    """Split sizes from the splits materialization's metadata (the test rows are counted here)."""
    event = context.instance.get_latest_materialization_event(key(spec, "splits"))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    rows = {s: int(meta[f"{s}_rows"].value) for s in ("train", "validation") if f"{s}_rows" in meta}
    return {**rows, "test": test_rows}
