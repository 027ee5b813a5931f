"""The simulation runners: shared streams, determinism, the ce-precision protocol."""
from cincer_service.experiments.config import SimulationConfig
from cincer_service.experiments.simulate import simulate
from cincer_service.spec import DEFAULT_BOOTSTRAP_SIZE, DEFAULT_STRATEGY, DEFAULT_THRESHOLD


def test_defaults_come_from_the_project_spec():
    cfg = SimulationConfig()
    assert (cfg.threshold, cfg.bootstrap, cfg.strategies) == (
        DEFAULT_THRESHOLD, DEFAULT_BOOTSTRAP_SIZE, [DEFAULT_STRATEGY])


def test_same_stream_for_every_strategy_and_deterministic():
    cfg = SimulationConfig(dataset="iris", strategies=["top_fisher", "top_fisher"],
                           bootstrap=40, iterations=8, seeds=[3], max_epochs=20)
    a, b = simulate(cfg, show_progress=False)["runs"]
    assert a["f1_trace"] == b["f1_trace"] and a["cleaned_trace"] == b["cleaned_trace"]


def test_ce_precision_protocol_reports_precision():
    cfg = SimulationConfig(dataset="wine", strategies=["top_fisher", "nearest"],
                           protocol="ce-precision", bootstrap=60, iterations=60, seeds=[0],
                           max_epochs=40)
    doc = simulate(cfg, show_progress=False)
    for run in doc["runs"]:
        assert run["f1_trace"] is None and run["n_cleaned"] is None
        if run["n_queries"]:
            assert 0.0 <= run["precision_at_5"] <= 1.0 and 0.0 <= run["precision_at_10"] <= 1.0


def test_dev_f1_uses_only_training_examples_the_run_never_saw():
    from cincer_service.experiments.simulate import Experiment
    cfg = SimulationConfig(dataset="iris", strategies=["no_ce"], bootstrap=40, iterations=30,
                           seeds=[1], max_epochs=20)
    exp = Experiment(cfg, 1)
    assert len(exp.dev) == len(exp.data.y_train) - 70
    assert not set(exp.dev) & (set(exp.bootstrap) | set(exp.stream))
    run = simulate(cfg, show_progress=False)["runs"][0]
    assert run["n_noisy_bootstrap"] == int(exp.corrupted[exp.bootstrap].sum())
    assert run["n_noisy_stream"] == int(exp.corrupted[exp.stream].sum())
    assert run["n_cleaned"] == run["n_cleaned_incoming"] + run["n_cleaned_counterexamples"]
    assert 0.0 < run["dev_f1"] <= 1.0
    # too few unused examples: no number
    small = SimulationConfig(dataset="iris", strategies=["no_ce"], bootstrap=60, iterations=50,
                             seeds=[1], max_epochs=5)
    assert simulate(small, show_progress=False)["runs"][0]["dev_f1"] is None
