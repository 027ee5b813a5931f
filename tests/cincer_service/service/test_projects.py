"""projects: create from a spec with its defaults, read, list."""
import pytest

from cincer_service import spec
from cincer_service.service import NotFound, projects
from tests.support.service import new_project


def test_spec_defaults_are_stored(ctx):
    created = projects.create_project(ctx, spec.ProjectSpec.build(
        name="p", classes=["a", "b"], input_shape=[3]))
    assert created["threshold"] == spec.DEFAULT_THRESHOLD
    assert created["strategy"] == spec.DEFAULT_STRATEGY
    assert created["bootstrap_size"] == spec.DEFAULT_BOOTSTRAP_SIZE
    assert created["model"] == {"kind": "fc", "seed": 0, "max_epochs": spec.DEFAULT_MAX_EPOCHS,
                                "warm_epochs": spec.DEFAULT_WARM_EPOCHS,
                                "schedule": spec.training_defaults("scratch").schedule,
                                "standardize": spec.training_defaults("scratch").standardize}
    assert created["retrain"] == {"mode": "scratch",
                                  "every_n_answers": spec.DEFAULT_RETRAIN_EVERY}
    assert created["classes"] == ["a", "b"] and created["input_shape"] == [3]
    assert created["model_version"] is None


def test_get_and_list(ctx):
    first, second = new_project(ctx), new_project(ctx, name="second", threshold=0.5)
    assert projects.get_project(ctx, second)["threshold"] == 0.5
    assert [p["id"] for p in projects.list_projects(ctx)] == [first, second]
    with pytest.raises(NotFound):
        projects.get_project(ctx, second + 1)
