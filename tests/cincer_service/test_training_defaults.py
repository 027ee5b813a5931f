"""The training defaults per retrain mode live once in the spec (issue 18): ``simulate``, a
new project and ``/models`` use them; ``simulate --compare-defaults`` puts sets side by side."""
import json

import pytest

from cincer_service import spec
from cincer_service.cli import main
from cincer_service.experiments.config import SimulationConfig, defaults_set
from cincer_service.service import examples, projects, training
from tests.support.service import BOOTSTRAP, items, make_context, new_project


@pytest.mark.parametrize("mode", spec.RETRAIN_MODES)
def test_simulate_and_a_new_project_use_the_spec_defaults(mode, tmp_path):
    defaults = spec.training_defaults(mode)
    assert defaults is spec.TRAINING_DEFAULTS[mode]
    # simulate: tabular data takes the mode's standardization; images and text never
    for dataset, standardized in (("breast", defaults.standardize), ("digits", False),
                                  ("intents", False)):
        run = SimulationConfig(dataset=dataset, retrain=mode).resolved()
        assert (run.schedule, run.standardize, run.damping) == (
            defaults.schedule, standardized, defaults.damping)
    assert defaults_set("new", mode) == defaults
    assert defaults_set("old", mode) == spec.PRE_WAVE2_TRAINING
    # a new project (through the service, as the API creates it)
    ctx = make_context(tmp_path)
    for kind, standardized in (("tabular", defaults.standardize), ("text", False)):
        created = projects.create_project(ctx, spec.ProjectSpec.build(
            name=f"p-{kind}", classes=["a", "b"], input_shape=[4], input_kind=kind,
            retrain={"mode": mode}))
        assert created["model"]["schedule"] == defaults.schedule
        assert created["model"]["standardize"] is standardized
        assert created["damping"] == defaults.damping
    # what a project asks for wins over the mode's defaults
    chosen = spec.ProjectSpec.build(name="q", classes=["a", "b"], input_shape=[4],
                                    model={"schedule": "fixed", "standardize": False},
                                    damping=0.5, retrain={"mode": mode})
    assert (chosen.model.schedule, chosen.model.standardize, chosen.damping) == ("fixed", False, 0.5)


@pytest.fixture
def fake_runs(monkeypatch):
    """``simulate``'s cleaning runner replaced by one that returns numbers made from the
    run's settings (no training); ``seen``: each run's config, and the schedule and
    standardization of the first run's classifier."""
    from cincer_service.experiments import simulate as module
    seen = []

    def run_cleaning(exp, name, progress=None):
        clf = exp.new_classifier() if not seen else None        # the first run's (keras: slow)
        seen.append((exp.config, clf and clf.schedule, clf and clf.standardize))
        config = exp.config
        bonus = {"accuracy": 0, "validation": 2, "fixed": 1}[config.schedule] + config.damping
        return module.RunResult(name, exp.seed, n_cleaned=exp.seed + bonus,
                                f1=0.5 + 0.01 * exp.seed + 0.001 * bonus)

    monkeypatch.setattr(module, "run_cleaning", run_cleaning)
    return seen


@pytest.mark.parametrize("mode", spec.RETRAIN_MODES)
def test_simulate_without_flags_trains_with_the_spec_defaults(mode, fake_runs, capsys):
    assert main(["simulate", "--dataset", "breast", "--retrain", mode, "--strategies", "no_ce",
                 "--iterations", "1", "--json"]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    defaults = spec.training_defaults(mode)
    assert (config["schedule"], config["standardize"], config["damping"]) == (
        defaults.schedule, defaults.standardize, defaults.damping)
    [(run_config, schedule, standardize)] = fake_runs
    assert (schedule, standardize, run_config.damping) == (
        defaults.schedule, defaults.standardize, defaults.damping)


def test_compare_defaults_table_and_json(fake_runs, tmp_path, capsys):
    args = ["simulate", "--compare-defaults", "old,new,fixed/std/3", "--dataset", "iris",
            "--mode", "warm,scratch", "--bootstrap", "30", "--iterations", "3",
            "--seeds", "0,1,2"]
    assert main([*args, "--out", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["sets"] == ["old", "new", "fixed/std/3"] and doc["modes"] == ["warm", "scratch"]
    assert [(r["mode"], r["set"]) for r in doc["rows"]] == [
        (m, s) for m in ("warm", "scratch") for s in ("old", "new", "fixed/std/3")]
    for row in doc["rows"]:
        assert row["seeds"] == [0, 1, 2] and row["strategy"] == spec.DEFAULT_STRATEGY
        assert row["n_cleaned_se"] == pytest.approx(1 / 3 ** 0.5)      # seeds 0, 1, 2
        if row["set"] == "old":
            assert "baseline" not in row and row["label"] == "accuracy/raw/1"
            assert row["n_cleaned_mean"] == pytest.approx(1 + 1)       # accuracy, λ 1
            continue
        base = next(r for r in doc["rows"] if r["mode"] == row["mode"] and r["set"] == "old")
        assert row["baseline"] == "old"
        assert row["d_n_cleaned"] == pytest.approx(row["n_cleaned_mean"] - base["n_cleaned_mean"])
        assert row["d_n_cleaned_paired_se"] == pytest.approx(0)         # the same shift per seed
        assert row["d_f1"] == pytest.approx(row["f1_mean"] - base["f1_mean"])
        assert row["within_1se_f1"] == (row["f1_mean"] >= base["f1_mean"] - base["f1_se"])
    fixed = [r for r in doc["rows"] if r["set"] == "fixed/std/3"]
    assert all(r["training"] == {"schedule": "fixed", "standardize": True, "damping": 3.0}
               and r["d_n_cleaned"] == pytest.approx(1 + 3 - 1) for r in fixed)
    assert {(c.retrain, c.schedule, c.standardize, c.damping) for c, *_ in fake_runs} == {
        (m, t.schedule, t.standardize, t.damping) for m in ("warm", "scratch")
        for t in (spec.PRE_WAVE2_TRAINING, spec.training_defaults(m),
                  spec.TrainingDefaults("fixed", True, 3.0))}
    assert json.loads((tmp_path / "compare.json").read_text())["rows"] == doc["rows"]
    # images and text are never standardized, whatever the set says (as in the service)
    fake_runs.clear()
    assert main(["simulate", "--compare-defaults", "old,wave2", "--dataset", "intents",
                 "--mode", "warm", "--iterations", "1", "--seeds", "0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c.standardize for c, *_ in fake_runs] == [False, False]
    assert doc["rows"][1]["label"] == "validation/raw/10"
    assert main(args[:2] + ["old,wave2", *args[3:]]) == 0
    table = capsys.readouterr().out
    assert "| iris | warm | wave2 | validation/std/10 | top_fisher | 13.0 ± 0.6 |" in table
    assert table.count("(baseline)") == 2


@pytest.mark.long
def test_compare_defaults_end_to_end(capsys):
    """A real (small) comparison: both modes, two sets, two seeds."""
    assert main(["simulate", "--compare-defaults", "old,new", "--dataset", "iris",
                 "--mode", "warm,scratch", "--bootstrap", "30", "--iterations", "3",
                 "--seeds", "0,1", "--max-epochs", "5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 4 and all(0 <= r["f1_mean"] <= 1 for r in rows)


@pytest.mark.parametrize("args,message", [
    (["--compare-defaults", "old"], "at least two"),
    (["--compare-defaults", "old,newest"], "unknown defaults set"),
    (["--compare-defaults", "old,accuracy/std/x"], "unknown defaults set"),
    (["--compare-defaults", "old,new", "--schedule", "fixed"], "exclude each other"),
    (["--compare-defaults", "old,new", "--mode", "warm,sometimes"], "--retrain"),
    (["--retrain", "warm,scratch"], "--retrain"),
    (["--damping", "0"], "--damping"),
])
def test_bad_comparisons_exit_2(args, message, capsys):
    assert main(["simulate", "--dataset", "iris", "--iterations", "1", *args]) == 2
    assert message in capsys.readouterr().err


def test_models_show_how_each_version_trained(tmp_path, breast):
    ctx = make_context(tmp_path)
    pid = new_project(ctx, model={"kind": "lr", "max_epochs": 5})
    examples.ingest(ctx, pid, items(breast, 0, BOOTSTRAP))
    [version] = training.list_models(ctx, pid)
    warm = spec.training_defaults("warm")          # new_project retrains warm
    assert version["training"]["schedule"] == warm.schedule
    assert version["training"]["standardize"] is warm.standardize
    assert version["training"]["damping"] == warm.damping
    assert version["training"]["max_epochs"] == 5
    assert version["metrics"]["schedule"] in spec.TRAINING_SCHEDULES     # the rule applied
