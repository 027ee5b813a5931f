"""``cincer-service audit``: JSON contract, files written with --out, exit 2 on bad input."""
import json

import pytest

from cincer_service.cli import main

FAST = ["--dataset", "breast", "--seeds", "0,1", "--segments", "2", "--epochs-per-segment", "5",
        "--clean-size", "60"]


def test_json_shape_and_output_files(tmp_path, capsys):
    rc = main(["audit", *FAST, "--detectors", "self_influence,gd_class,mismatch",
               "--out", str(tmp_path), "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"config", "runs", "summary"}
    assert doc["config"]["clean_size_used"] == 60 and doc["config"]["seeds"] == [0, 1]
    assert len(doc["runs"]) == 6
    run_keys = {"detector", "seed", "precision_at_5pct", "precision_at_10pct",
                "precision_at_20pct", "roc_auc", "seconds"}
    assert all(set(r) == run_keys for r in doc["runs"])
    assert all(0 <= r["precision_at_10pct"] <= 1 and 0 <= r["roc_auc"] <= 1 for r in doc["runs"])
    assert list(doc["summary"]) == ["self_influence", "gd_class", "mismatch"]
    expected = {f"{m}_{s}" for m in ["precision_at_5pct", "precision_at_10pct",
                                     "precision_at_20pct", "roc_auc", "seconds"]
                for s in ("mean", "std")}
    assert set(doc["summary"]["gd_class"]) == expected
    table = (tmp_path / "audit-table.md").read_text()
    assert "| gd_class |" in table and "top 10%" in table
    assert (tmp_path / "audit-roc.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "audit.json").read_text())["runs"] == doc["runs"]


def test_near_duplicates_are_reported_as_pairs_per_seed(capsys):
    rc = main(["audit", *FAST, "--model", "lr", "--detectors", "margin,near_duplicates", "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["summary"]) == ["margin"]             # pairs have no ranking to score
    assert [entry["seed"] for entry in doc["duplicates"]] == [0, 1]
    pair_keys = {"first", "second", "similarity", "label", "prediction"}
    for entry in doc["duplicates"]:
        assert entry["leakage"] == []
        assert all(set(p) == pair_keys and p["similarity"] >= 0.99 for p in entry["duplicates"])


@pytest.mark.parametrize("args,message", [
    (["--detectors", "gd,nope"], "unknown detector"),
    (["--noise", "0"], "--noise"),
    (["--noise-type", "sideways"], "noise type"),
    (["--model", "cnn"], "image inputs"),
    (["--seeds", "0,x"], "cannot parse"),
    (["--dataset", "mnist"], "unknown dataset"),
    (["--clean-size", "0"], "--clean-size"),
    (["--detectors", "gd_class", "--clean-size", "4"], "not enough trusted examples per class"),
])
def test_bad_input_exits_2_with_a_message(args, message, capsys):
    assert main(["audit", *FAST, *args]) == 2
    assert message in capsys.readouterr().err
