"""``examples``, ``queries``, ``models`` and ``audits`` against the fake service."""
import json

from clients.cli import main

from ..inputs import write_csv


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and out.strip() else out), err


def ingest(tmp_path, capsys):
    """Examples 1..3; the third (label 2) gets query 1 with example 1 as counter-example."""
    path = write_csv(tmp_path / "d.csv", [[0, 1, 2, 3, 0, "a"], [1, 1, 1, 1, 1, "b"],
                                          [2, 2, 2, 2, 2, "c"]])
    assert main(["1", "ingest", path, "--quiet"]) == 0
    capsys.readouterr()


def test_examples(fake, capsys, tmp_path):
    service, _ = fake
    ingest(tmp_path, capsys)
    code, page, _ = run(capsys, "1", "examples", "list", "--limit", 2, "--offset", 1,
                        "--status", "accepted")
    assert code == 0 and [e["id"] for e in page["items"]] == [2, 3] and page["total"] == 3
    assert service.requests[-1][:2] == ("GET", "/api/v1/projects/1/examples")
    code, everything, _ = run(capsys, "1", "examples", "list", "--all", "--limit", 2)
    assert [e["id"] for e in everything["items"]] == [1, 2, 3] and everything["total"] == 3
    code, _, err = run(capsys, "1", "examples", "list", "--all", "--offset", 1)
    assert code == 2 and "--offset" in err
    code, example, _ = run(capsys, "1", "examples", "show", 2)
    assert code == 0 and example["id"] == 2 and "history" in example
    assert main(["1", "examples", "show"]) == 2


def test_queries_lifecycle(fake, capsys, tmp_path):
    service, _ = fake
    code, nothing, _ = run(capsys, "1", "queries", "next")
    assert code == 0 and nothing is None                   # 204: printed as null
    ingest(tmp_path, capsys)
    code, page, _ = run(capsys, "1", "queries", "list", "--status", "open")
    assert page["total"] == 1 and page["items"][0]["id"] == 1
    code, leased, _ = run(capsys, "1", "queries", "next")
    assert leased["status"] == "leased"
    code, released, _ = run(capsys, "1", "queries", "release", 1)
    assert code == 0 and released["status"] == "open"
    assert service.requests[-1][:2] == ("POST", "/api/v1/projects/1/queries/1/release")
    run(capsys, "1", "queries", "next")
    code, answered, _ = run(capsys, "1", "queries", "answer", 1, "--label", "1",
                            "--counterexample-label", "0")
    assert code == 0 and answered["status"] == "answered"
    assert service.requests[-1][2] == {"example_label": 1, "counterexample_label": 0}
    code, shown, _ = run(capsys, "1", "queries", "show", 1)
    assert shown["status"] == "answered"
    code, corrected, _ = run(capsys, "1", "queries", "correct", 1, "--label", "c",
                             "--not-sure", "--reason", "second look")
    assert code == 0
    assert service.requests[-1][2] == {"example_label": "c", "counterexample_not_sure": True,
                                       "reason": "second look"}
    code, _, err = run(capsys, "1", "queries", "release", 1)
    assert code == 2 and "409" in err
    code, _, err = run(capsys, "1", "queries", "show", 5)
    assert code == 2 and "404" in err


def test_queries_bad_input(fake, capsys):
    service, _ = fake
    sent = len(service.requests)
    code, _, err = run(capsys, "1", "queries", "answer", 1, "--label", "0",
                       "--counterexample-label", "1", "--not-sure")
    assert code == 2 and "not both" in err
    code, _, err = run(capsys, "1", "queries", "answer", 1, "--label", " ")
    assert code == 2 and "empty" in err
    assert len(service.requests) == sent
    for argv in (["answer", 1], ["correct", 1, "--label", "0"], ["show", "one"], ["list",
                 "--limit", "x"], ["frobnicate"]):
        assert main(["1", "queries", *map(str, argv)]) == 2, argv


def test_models_and_audits(fake, capsys):
    service, _ = fake
    code, models, _ = run(capsys, "1", "models", "list")
    assert code == 0 and models["items"][0]["version"] == 1
    code, queued, _ = run(capsys, "1", "models", "retrain")
    assert queued["status"] == "queued"
    assert service.requests[-1][:2] == ("POST", "/api/v1/projects/1/models/retrain")
    code, audit, _ = run(capsys, "1", "audits", "create", "--detectors", "margin, gd")
    assert code == 0 and audit["id"] == 1
    assert service.requests[-1][2] == {"detectors": ["margin", "gd"], "top_k": 20}
    run(capsys, "1", "audits", "create", "--detectors", "margin", "--top-k", 3)
    code, page, _ = run(capsys, "1", "audits", "list", "--limit", 1)
    assert [a["id"] for a in page["items"]] == [2] and page["total"] == 2
    code, shown, _ = run(capsys, "1", "audits", "show", 1)
    assert shown["detectors"] == ["margin", "gd"]
    code, enqueued, _ = run(capsys, "1", "audits", "enqueue", 1, "--top-k", 4)
    assert enqueued["enqueued"] == 1 and service.requests[-1][2] == {"top_k": 4}
    run(capsys, "1", "audits", "enqueue", 2)
    assert service.requests[-1][2] == {}
    code, _, err = run(capsys, "1", "audits", "show", 9)
    assert code == 2 and "404" in err
    code, _, err = run(capsys, "1", "audits", "create", "--detectors", ",")
    assert code == 2 and "--detectors" in err
