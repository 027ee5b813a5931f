"""``cincer-service simulate``: JSON contract, plots with --out, exit 2 on bad input."""
import json

import numpy as np
import pytest

from cincer_service.cli import main

RUN_KEYS = {"strategy", "seed", "n_queries", "n_cleaned", "n_cleaned_incoming",
            "n_cleaned_counterexamples", "f1", "f1_trace", "cleaned_trace", "precision_at_5",
            "precision_at_10", "seconds_per_iteration", "counterexample_ms"}
SUMMARY_KEYS = {"n_cleaned_mean", "n_cleaned_se", "f1_mean", "f1_se", "precision_at_5_mean",
                "precision_at_10_mean", "counterexample_ms_median", "seconds_per_iteration_median"}


def test_simulate_json_contract_and_plots(tmp_path, capsys):
    code = main(["simulate", "--dataset", "iris", "--model", "fc", "--strategies",
                 "top_fisher,no_ce,drop_ce", "--bootstrap", "40", "--iterations", "12",
                 "--seeds", "0,1", "--max-epochs", "30", "--out", str(tmp_path), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["dataset"] == "iris"
    assert len(doc["runs"]) == 6
    for run in doc["runs"]:
        assert set(run) >= RUN_KEYS
        assert len(run["f1_trace"]) == len(run["cleaned_trace"]) == 12
        assert run["n_cleaned"] == run["n_cleaned_incoming"] + run["n_cleaned_counterexamples"]
        assert np.all(np.diff(run["cleaned_trace"]) >= 0)
        assert run["precision_at_5"] is None          # not a ce-precision run
    no_ce = [r for r in doc["runs"] if r["strategy"] == "no_ce"]
    assert all(r["n_cleaned_counterexamples"] == 0 for r in no_ce)
    assert set(doc["summary"]) == {"top_fisher", "no_ce", "drop_ce"}
    assert all(set(s) >= SUMMARY_KEYS for s in doc["summary"].values())
    assert (tmp_path / "cleaned.png").stat().st_size > 1000
    assert (tmp_path / "f1.png").stat().st_size > 1000
    assert json.loads((tmp_path / "results.json").read_text())["summary"] == doc["summary"]


@pytest.mark.parametrize("args,message", [
    (["--dataset", "mnist"], "unknown dataset"),
    (["--strategies", "top_fisher,oracle"], "unknown strategy"),
    (["--noise", "1.5"], "--noise"),
    (["--retrain", "sometimes"], "--retrain"),
    (["--seeds", "a,b"], "cannot parse"),
    (["--dataset", "iris", "--bootstrap", "100", "--iterations", "100"], "training examples"),
])
def test_bad_arguments_exit_2_with_a_message(args, message, capsys):
    assert main(["simulate", "--iterations", "1", *args]) == 2
    assert message in capsys.readouterr().err
