"""spec.py: loading, validation messages, defaults and discovery of ML specs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml_assets.lib.spec import (
    BUILTIN_SPEC_DIR,
    MLSpec,
    SpecError,
    discover_specs,
    load_spec,
    statsmodels_datasets,
)

MINIMAL = {"name": "toy", "task": "classification", "target": "y"}


def test_builtin_specs_are_discovered_and_valid() -> None:
    specs = {s.name: s for s in discover_specs()}
    assert sorted(specs) == ["affairs", "churn", "co2", "doctor_visits", "party"]
    affairs, visits, churn = specs["affairs"], specs["doctor_visits"], specs["churn"]
    assert churn.source.recent_days == 14 and churn.monitoring is not None
    assert churn.split_strategy == "temporal" and churn.time_column == "snapshot_date"
    assert affairs.task == "classification"
    assert affairs.source.statsmodels == "fair"
    assert affairs.derive == {"had_affair": "CAST(affairs > 0 AS INT)"}
    assert affairs.spec_path == BUILTIN_SPEC_DIR / "affairs.yaml"
    assert visits.task == "regression"
    assert visits.primary_metric == "rmse"
    assert visits.split_strategy == "random"


def test_builtin_statsmodels_sources_exist() -> None:
    names = statsmodels_datasets()
    assert {"fair", "randhie"} <= set(names)


def test_typo_in_top_level_field_names_file_field_and_suggestion(write_spec) -> None:
    path = write_spec({**MINIMAL, "candidatez": {"glm": {}}})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message
    assert "field 'candidatez'" in message
    assert "Did you mean 'candidates'?" in message
    assert "unknown field" in message


def test_typo_in_nested_field_suggests_the_nested_name(write_spec) -> None:
    path = write_spec({**MINIMAL, "split": {"validatio_fraction": 0.1}})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert "field 'split.validatio_fraction'" in message
    assert "Did you mean 'validation_fraction'?" in message


def test_typo_in_column_contract_suggests_the_contract_field(write_spec) -> None:
    path = write_spec({**MINIMAL, "validation": {"columns": {"x1": {"mni": 0}}}})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert "field 'validation.columns.x1.mni'" in message
    assert "Did you mean 'min'?" in message


def test_missing_required_field_is_named(write_spec) -> None:
    path = write_spec({"name": "toy", "task": "classification"})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message
    assert "field 'target': required field is missing" in message


def test_source_path_that_does_not_exist(write_spec, tmp_path: Path) -> None:
    path = write_spec({**MINIMAL, "source": {"path": "nowhere/missing.csv"}})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert "field 'source.path'" in message
    assert str(path) in message
    assert str(tmp_path / "nowhere" / "missing.csv") in message
    assert "does not exist" in message


def test_source_path_with_unsupported_suffix(write_spec, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("a,b\n1,2\n")
    path = write_spec({**MINIMAL, "source": {"path": "data.txt"}})
    with pytest.raises(SpecError, match=r"field 'source.path': data.txt is neither"):
        load_spec(path)


def test_source_needs_exactly_one_of_path_or_statsmodels(write_spec) -> None:
    path = write_spec({**MINIMAL, "source": {"path": "data.csv", "statsmodels": "fair"}})
    with pytest.raises(SpecError, match="give exactly one of 'path'"):
        load_spec(path)


MONITORED = {
    **MINIMAL,
    "source": {"recent_days": 14},
    "time_column": "day",
    "monitoring": {"start_date": "2026-01-01"},
}


def test_recent_days_source_reads_the_monitored_stream(write_spec) -> None:
    spec = load_spec(write_spec(MONITORED))
    assert spec.source.recent_days == 14 and spec.source_file is None
    assert spec.split_strategy == "temporal"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"monitoring": None}, "add a 'monitoring' section and a 'time_column'"),
        ({"time_column": None}, "add a 'monitoring' section and a 'time_column'"),
        ({"source": {"recent_days": 0}}, "source.recent_days"),
        ({"source": {"recent_days": 7, "statsmodels": "fair"}}, "give exactly one of"),
    ],
)
def test_recent_days_source_needs_monitoring_and_time(write_spec, override, message) -> None:
    body = {k: v for k, v in {**MONITORED, **override}.items() if v is not None}
    with pytest.raises(SpecError, match=message):
        load_spec(write_spec(body))


def test_monitoring_is_not_for_forecasting(make_spec) -> None:
    with pytest.raises(ValueError, match="'monitoring' .* is for classification and regression"):
        make_spec(
            {
                "task": "forecasting",
                "metrics": None,
                "candidates": None,
                "time_column": "t",
                "forecast": {"frequency": "1d", "horizon": 7},
                "monitoring": {"start_date": "2026-01-01"},
            }
        )


def test_unknown_statsmodels_dataset_suggests_close_name(write_spec) -> None:
    path = write_spec({**MINIMAL, "source": {"statsmodels": "fiar"}})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert "field 'source.statsmodels'" in message
    assert "no bundled statsmodels dataset named 'fiar'" in message
    assert "Did you mean 'fair'?" in message


@pytest.mark.parametrize(
    ("override", "bad"),
    [
        ({"metrics": {"primary": "rmse"}}, "rmse"),
        ({"metrics": {"secondary": ["accuracy", "auc"]}}, "auc"),
        ({"success_criteria": {"thresholds": {"r2": {"min": 0.1}}}}, "r2"),
    ],
)
def test_unknown_metric_is_rejected_with_choices(write_spec, override, bad) -> None:
    path = write_spec({**MINIMAL, **override})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert f"unknown metric '{bad}' for task classification" in message
    assert "roc_auc" in message and "log_loss" in message


@pytest.mark.parametrize("name", ["Affairs", "my-spec", "1st", "has space"])
def test_name_must_be_snake_case(write_spec, name) -> None:
    path = write_spec({**MINIMAL, "name": name})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert "field 'name'" in str(err.value)
    assert f"'{name}' is not snake_case" in str(err.value)


def test_temporal_split_needs_time_column(write_spec) -> None:
    path = write_spec({**MINIMAL, "split": {"strategy": "temporal"}})
    with pytest.raises(SpecError, match="split strategy 'temporal' needs 'time_column'"):
        load_spec(path)


def test_stratified_split_is_only_for_classification(write_spec) -> None:
    path = write_spec({**MINIMAL, "task": "regression", "split": {"strategy": "stratified"}})
    with pytest.raises(SpecError, match="'stratified' is only for classification"):
        load_spec(path)


def test_other_consistency_rules(make_spec) -> None:
    with pytest.raises(ValueError, match="leave at least 20% for training"):
        make_spec({"split": {"validation_fraction": 0.45, "test_fraction": 0.4}})
    with pytest.raises(ValueError, match="target 'y' is also listed in 'drop'"):
        make_spec({"drop": ["y"]})
    with pytest.raises(ValueError, match="no candidate enabled"):
        make_spec({"candidates": {"glm": {"enabled": False}, "lightgbm": {"enabled": False}}})
    with pytest.raises(ValueError, match="'forecasting' needs 'time_column'"):
        make_spec({"task": "forecasting", "metrics": None, "candidates": None})
    with pytest.raises(ValueError, match="not for task forecasting"):
        make_spec({"task": "forecasting", "metrics": None, "time_column": "x1"})


def test_invalid_yaml_names_the_file(write_spec) -> None:
    path = write_spec("name: toy\ntask: [classification\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value)
    assert "not valid YAML" in str(err.value)


def test_yaml_that_is_not_a_mapping(write_spec) -> None:
    path = write_spec("- name: toy\n")
    with pytest.raises(SpecError, match="expected a mapping of fields"):
        load_spec(path)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "absent.yaml")


def test_defaults_for_classification() -> None:
    spec = MLSpec.model_validate({**MINIMAL, "source": {"path": "x.csv"}})
    assert spec.primary_metric == "roc_auc"
    assert spec.all_metrics == ["roc_auc"]
    assert spec.split_strategy == "stratified"
    assert spec.split.validation_fraction == 0.2
    assert spec.split.test_fraction == 0.2
    assert spec.split.seed == 42
    assert spec.families == ["glm", "lightgbm"]


def test_defaults_for_regression() -> None:
    spec = MLSpec.model_validate({**MINIMAL, "task": "regression", "source": {"path": "x.csv"}})
    assert spec.primary_metric == "rmse"
    assert spec.split_strategy == "random"


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_time_column_defaults_to_temporal_split(task) -> None:
    spec = MLSpec.model_validate(
        {**MINIMAL, "task": task, "source": {"path": "x.csv"}, "time_column": "day"}
    )
    assert spec.split_strategy == "temporal"


def test_explicit_strategy_wins_over_time_column() -> None:
    spec = MLSpec.model_validate(
        {
            **MINIMAL,
            "source": {"path": "x.csv"},
            "time_column": "day",
            "split": {"strategy": "random"},
        }
    )
    assert spec.split_strategy == "random"


def test_all_metrics_puts_primary_first_without_duplicates() -> None:
    spec = MLSpec.model_validate(
        {
            **MINIMAL,
            "source": {"path": "x.csv"},
            "metrics": {"primary": "log_loss", "secondary": ["roc_auc", "log_loss", "f1"]},
        }
    )
    assert spec.all_metrics == ["log_loss", "roc_auc", "f1"]


def test_relative_source_path_resolves_against_spec_directory(
    write_spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_dir = tmp_path / "specs" / "nested"
    (tmp_path / "specs" / "data").mkdir(parents=True)
    (tmp_path / "specs" / "data" / "rows.csv").write_text("x,y\n1,0\n2,1\n")
    path = write_spec({**MINIMAL, "source": {"path": "../data/rows.csv"}}, directory=spec_dir)
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    spec = load_spec(path)
    assert spec.source_file == (tmp_path / "specs" / "data" / "rows.csv").resolve()
    assert spec.spec_path == path.resolve()


def test_absolute_source_path_is_kept(write_spec, tmp_path: Path) -> None:
    csv = tmp_path / "elsewhere.csv"
    csv.write_text("x,y\n1,0\n")
    spec = load_spec(
        write_spec({**MINIMAL, "source": {"path": str(csv)}}, directory=tmp_path / "d")
    )
    assert spec.source_file == csv


def test_digest_is_stable_and_ignores_location(write_spec, tmp_path: Path) -> None:
    content = {**MINIMAL, "source": {"statsmodels": "fair"}}
    first = load_spec(write_spec(content, directory=tmp_path / "a"))
    second = load_spec(write_spec(content, directory=tmp_path / "b"))
    changed = load_spec(write_spec({**content, "description": "other"}, directory=tmp_path / "c"))
    assert first.digest() == second.digest()
    assert len(first.digest()) == 12
    assert changed.digest() != first.digest()


def test_discover_specs_adds_extra_directory(write_spec, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    write_spec({**MINIMAL, "name": "my_use_case"}, filename="mine.yaml", directory=extra)
    names = [s.name for s in discover_specs(str(extra))]
    assert names == ["affairs", "churn", "co2", "doctor_visits", "party", "my_use_case"]


def test_duplicate_name_across_builtin_and_extra_dir_raises(write_spec, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    path = write_spec({**MINIMAL, "name": "affairs"}, filename="copy.yaml", directory=extra)
    with pytest.raises(SpecError) as err:
        discover_specs(str(extra))
    message = str(err.value)
    assert "spec name 'affairs'" in message
    assert str(path.resolve()) in message
    assert str(BUILTIN_SPEC_DIR / "affairs.yaml") in message


def test_duplicate_name_within_extra_dir_raises(write_spec, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    write_spec({**MINIMAL, "name": "mine"}, filename="a.yaml", directory=extra)
    write_spec({**MINIMAL, "name": "mine"}, filename="b.yaml", directory=extra)
    with pytest.raises(SpecError, match="spec name 'mine' .* names must be unique"):
        discover_specs(str(extra))


def test_extra_dir_that_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is not a directory"):
        discover_specs(str(tmp_path / "nope"))


def test_invalid_spec_in_extra_dir_fails_discovery(write_spec, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    bad = write_spec({**MINIMAL, "name": "mine", "targte": "y"}, directory=extra)
    with pytest.raises(SpecError) as err:
        discover_specs(str(extra))
    assert str(bad.resolve()) in str(err.value)
    assert "Did you mean 'target'?" in str(err.value)


def test_builtin_specs_round_trip_through_yaml(tmp_path: Path) -> None:
    raw = yaml.safe_load((BUILTIN_SPEC_DIR / "affairs.yaml").read_text())
    copy_path = tmp_path / "affairs.yaml"
    copy_path.write_text(yaml.safe_dump(raw, sort_keys=False))  # comments dropped, order kept
    assert load_spec(copy_path).digest() == load_spec(BUILTIN_SPEC_DIR / "affairs.yaml").digest()


def test_load_all_specs_keeps_broken_files_aside(write_spec, tmp_path: Path) -> None:
    from ml_assets.lib.spec import load_all_specs

    extra = tmp_path / "extra"
    write_spec({**MINIMAL, "name": "mine"}, filename="a.yaml", directory=extra)
    bad = write_spec({**MINIMAL, "name": "typo", "targte": "y"}, filename="b.yaml", directory=extra)
    copy = write_spec({**MINIMAL, "name": "mine"}, filename="c.yaml", directory=extra)
    found = load_all_specs(str(extra))
    assert [s.name for s in found.specs] == [
        "affairs",
        "churn",
        "co2",
        "doctor_visits",
        "party",
        "mine",
    ]
    assert list(found.broken) == [bad.resolve(), copy.resolve()]
    assert "Did you mean 'target'?" in str(found.broken[bad.resolve()])
    assert "names must be unique" in str(found.broken[copy.resolve()])
