"""families.py: the registry of model families agrees with the spec's settings and refuses
what it does not know."""

from __future__ import annotations

import pytest

from ml_assets.lib import families
from ml_assets.lib.spec import FAMILY_SETTINGS, Candidates, SpecError, load_spec
from ml_assets_tests.lib.conftest import forecast_spec, spec_from

TABULAR = ("classification", "regression")


def test_every_configurable_family_is_registered_and_nothing_else() -> None:
    assert set(families.REGISTRY) == set(FAMILY_SETTINGS) == set(Candidates.model_fields)


@pytest.mark.parametrize("name", sorted(FAMILY_SETTINGS))
def test_a_family_has_a_trainer_for_exactly_the_tasks_it_serves(name: str) -> None:
    entry = families.REGISTRY[name]
    assert (entry.tabular is not None) == any(t in entry.tasks for t in TABULAR)
    assert (entry.forecaster is not None) == ("forecasting" in entry.tasks)
    assert entry.library


def test_unknown_or_unsupported_family_is_an_error_naming_the_choices() -> None:
    with pytest.raises(families.UnknownFamilyError, match=r"'xgboost'.*\['glm', 'lightgbm'\]"):
        families.family("xgboost", "classification")
    with pytest.raises(families.UnknownFamilyError, match="'ets' is not available for task"):
        families.family("ets", "regression")


def test_a_spec_naming_an_unknown_family_fails_with_file_field_and_choices(write_spec) -> None:
    path = write_spec(
        {
            "name": "toy",
            "task": "classification",
            "target": "y",
            "candidates": {"xgboost": {}},
        }
    )
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message
    assert "candidates.xgboost" in message
    assert "glm" in message and "lightgbm" in message  # the families that do exist


def test_a_spec_naming_a_family_of_another_task_is_refused(write_spec) -> None:
    path = write_spec(
        {"name": "toy", "task": "classification", "target": "y", "candidates": {"ets": {}}}
    )
    with pytest.raises(SpecError, match=r"candidates \['ets'\] are not for task classification"):
        load_spec(path)


def test_registry_builds_the_named_forecaster_with_the_spec_settings() -> None:
    spec = forecast_spec(candidates={"sarimax": {"order": [1, 0, 1]}})
    model = families.forecaster(spec, "sarimax")
    assert model.name == "sarimax" and model.role == "candidate"
    assert tuple(model.params["order"]) == (1, 0, 1)


def test_tabular_training_dispatches_on_the_family_name() -> None:
    spec = spec_from({"candidates": {"glm": {}}})
    assert families.family("glm", spec.task).tabular is not None
    with pytest.raises(families.UnknownFamilyError):
        families.train_tabular(spec, "prophet", None, None)  # type: ignore[arg-type]
