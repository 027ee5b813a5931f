"""The crowd's endpoints from the client and the CLI, against the real API (``live``)."""
import json

from clients.cli import main


def run(capsys, *argv) -> tuple[int, dict | None, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_annotators_gold_and_sources(live, capsys):
    pid = live.create_project({"name": "p", "classes": ["a", "b"], "input_shape": [2],
                               "bootstrap_size": 4})["id"]
    stored = live.ingest(pid, [{"x": [float(i), 1.0], "label": i % 2, "source": "s1"}
                               for i in range(3)])
    ids = [item["id"] for item in stored]
    code, out, _ = run(capsys, pid, "annotators", "list")
    assert code == 0 and out["items"] == [] and out["krippendorff_alpha"] is None
    code, out, _ = run(capsys, pid, "gold", "mark", ",".join(map(str, ids[:2])))
    assert code == 0 and out["total"] == 2
    assert live.list_gold(pid)["total"] == 2
    code, out, _ = run(capsys, pid, "gold", "mark", "x")
    assert code == 2
    code, out, _ = run(capsys, pid, "gold", "mark", str(10**9))
    assert code == 2
    code, out, _ = run(capsys, pid, "sources", "list")
    assert code == 0 and out["items"][0]["source"] == "s1" and out["items"][0]["examples"] == 3
    code, _, err = run(capsys, pid, "sources", "apply", "--source", "s1", "--from", "a",
                       "--to", "b")
    assert code == 2 and "no such proposal" in err
    code, _, _ = run(capsys, pid, "annotators", "suspend", 99)
    assert code == 2
    code, out, _ = run(capsys, pid, "projects", "update", "--answers-per-query", "2")
    assert code == 0 and out["crowd"]["answers_per_query"] == 2
    code, _, _ = run(capsys, pid, "projects", "update", "--answers-per-query", "9")
    assert code == 2
