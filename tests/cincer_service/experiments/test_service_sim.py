"""The service-level simulation: a tiny replay through the real service, via the CLI."""
import json

import pytest

from cincer_service.cli import main
from cincer_service.experiments.service_sim import ServiceSimConfig

TINY = ["--dataset", "breast", "--model", "lr", "--bootstrap", "40", "--stream", "60",
        "--batch", "20", "--answers-per-batch", "3", "--answers", "8", "--ks", "2,5,8",
        "--orders", "fifo,priority", "--budgets", "none,10", "--retrain-every", "4",
        "--retrain", "warm", "--max-epochs", "20", "--seeds", "0"]


def test_tiny_replay_reports_cleaning_and_versions(tmp_path, capsys):
    assert main(["service-sim", *TINY, "--out", str(tmp_path)]) == 0
    document = json.loads(capsys.readouterr().out)
    runs = document["runs"]
    assert [(r["order"], r["budget"]) for r in runs] == [
        ("fifo", None), ("priority", None), ("fifo", 10.0), ("priority", 10.0)]
    for run in runs:
        trace = run["cleaned_trace"]
        assert run["answers"] == len(trace) <= 8
        assert trace == sorted(trace)                       # truthful answers never undo
        assert all(0 <= c <= 2 * (i + 1) for i, c in enumerate(trace))
        for k in ("2", "5", "8"):
            expected = trace[int(k) - 1] if len(trace) >= int(k) else None
            assert run["cleaned_at"][k] == expected
        versions = run["versions"]
        assert versions and versions[0]["version"] == 1
        assert all(0.0 <= v["test_f1"] <= 1.0 for v in versions)
        assert "trusted" in versions[-1]["heldout"]
        assert run["threshold"]["mode"] == ("fixed" if run["budget"] is None else "budget")
    # every variant starts from the same data, noise and first model
    assert len({r["versions"][0]["test_f1"] for r in runs}) == 1
    assert len({r["planted_errors"] for r in runs}) == 1
    summary = document["summary"]
    assert set(summary) == {"fifo/fixed", "priority/fixed", "priority-fifo/fixed",
                            "fifo/budget10", "priority/budget10", "priority-fifo/budget10"}
    assert summary["priority/fixed"]["cleaned_at"]["2"]["n"] == 1
    assert (tmp_path / "service_sim.png").stat().st_size > 0
    assert json.loads((tmp_path / "results.json").read_text())["config"]["answers"] == 8


@pytest.mark.parametrize("change,message", [
    ({"orders": ["lifo"]}, "--orders"), ({"budgets": [500.0]}, "--budgets"),
    ({"dataset": "mnist"}, "unknown dataset"), ({"ks": [0]}, "--ks")])
def test_bad_settings_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        ServiceSimConfig(**change).validate()


def test_bad_settings_exit_with_usage_error(capsys):
    assert main(["service-sim", "--orders", "lifo"]) == 2
    assert "--orders" in capsys.readouterr().err
