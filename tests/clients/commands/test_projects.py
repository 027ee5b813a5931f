"""``projects`` and ``tokens`` against the fake service: flags and JSON files, what is sent,
JSON output, and bad input (exit 2) before or after the request."""
import json

from clients.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and out.strip() else out), err


def test_create_from_flags(fake, capsys):
    service, _ = fake
    code, project, _ = run(capsys, "projects", "create", "--name", "cats", "--classes",
                           "cat, dog", "--input-shape", "8,8,1", "--model-kind", "cnn",
                           "--seed", 3, "--threshold", 0.4, "--retrain-every", 5,
                           "--input-kind", "image", "--holdout-share", 0.1)
    assert code == 0 and project["id"] == 2 and project["classes"] == ["cat", "dog"]
    assert service.requests[-1] == ("POST", "/api/v1/projects", {
        "name": "cats", "classes": ["cat", "dog"], "input_shape": [8, 8, 1],
        "input_kind": "image", "holdout_share": 0.1,
        "model": {"kind": "cnn", "seed": 3}, "threshold": 0.4,
        "retrain": {"every_n_answers": 5}})


def test_create_from_a_file_with_flags_over_it(fake, capsys, tmp_path):
    service, _ = fake
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "file", "classes": ["a", "b"], "input_shape": [2],
                                "retrain": {"mode": "warm", "every_n_answers": 2}}))
    code, project, _ = run(capsys, "projects", "create", "--file", spec, "--name", "flag",
                           "--retrain-every", 9)
    assert code == 0 and project["name"] == "flag"
    assert service.requests[-1][2]["retrain"] == {"mode": "warm", "every_n_answers": 9}
    run(capsys, "projects", "create", "--name", "t", "--classes", "a,b", "--input-kind", "text",
        "--feature-names", "u,v")
    assert service.requests[-1][2] == {"name": "t", "classes": ["a", "b"],
                                       "input_kind": "text", "feature_names": ["u", "v"]}
    code, projects, _ = run(capsys, "projects", "list")
    assert [p["id"] for p in projects["items"]] == [1, 2, 3]


def test_create_bad_input_exits_2(fake, capsys, tmp_path):
    service, _ = fake
    sent = len(service.requests)
    for argv in (["--name", "x"],                                     # classes, shape missing
                 ["--name", "x", "--classes", "a,,b", "--input-shape", "2"],
                 ["--name", "x", "--classes", "a,b", "--input-shape", "2,x"],
                 ["--file", tmp_path / "missing.json"],
                 ["--threshold", "high"]):
        code, _, err = run(capsys, "projects", "create", *argv)
        assert code == 2 and err, argv
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{")
    for name in ("list.json", "broken.json"):
        code, _, err = run(capsys, "projects", "create", "--file", tmp_path / name)
        assert code == 2 and name in err
    assert len(service.requests) == sent                              # nothing was sent


def test_show_update_history_delete(fake, capsys):
    service, _ = fake
    code, project, _ = run(capsys, "1", "projects", "show")
    assert code == 0 and project["name"] == "fake"
    code, updated, _ = run(capsys, "1", "projects", "update", "--threshold", 0.5,
                           "--strategy", "nearest", "--damping", 0.1, "--bootstrap-size", 7,
                           "--retrain-mode", "warm")
    assert code == 0 and updated["threshold"] == 0.5
    assert service.requests[-1] == ("PATCH", "/api/v1/projects/1", {
        "threshold": 0.5, "strategy": "nearest", "damping": 0.1, "bootstrap_size": 7,
        "retrain": {"mode": "warm"}})
    run(capsys, "1", "projects", "update", "--query-budget", "none", "--queue-order", "fifo")
    assert service.requests[-1][2] == {"query_budget": None, "queue_order": "fifo"}
    run(capsys, "1", "projects", "update", "--query-budget", "2.5")
    assert service.requests[-1][2] == {"query_budget": 2.5}
    code, history, _ = run(capsys, "1", "projects", "history")
    assert history["items"][0]["changes"]["threshold"] == {"old": None, "new": 0.5}
    code, _, err = run(capsys, "1", "projects", "delete")
    assert code == 2 and "--yes" in err and service.requests[-1][0] != "DELETE"
    code, out, _ = run(capsys, "1", "projects", "delete", "--yes")
    assert code == 0 and out == {"deleted": 1}
    assert service.requests[-1][:2] == ("DELETE", "/api/v1/projects/1")
    code, _, err = run(capsys, "1", "projects", "show")
    assert code == 2 and "404" in err


def test_update_refusals_exit_2(fake, capsys, tmp_path):
    code, _, err = run(capsys, "1", "projects", "update")
    assert code == 2 and "nothing to change" in err
    code, _, err = run(capsys, "1", "projects", "update", "--query-budget", "lots")
    assert code == 2 and "--query-budget" in err
    code, _, err = run(capsys, "1", "projects", "update", "--threshold", 3)
    assert code == 2 and "422" in err and "threshold" in err
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({"classes": ["x", "y"]}))
    code, _, err = run(capsys, "1", "projects", "update", "--file", fixed)
    assert code == 2 and "cannot be changed" in err
    code, _, err = run(capsys, "projects", "update", "--threshold", 0.1)   # no project id
    assert code == 2 and "projects update" in err
    code, _, err = run(capsys, "9", "projects", "history")
    assert code == 2 and "404" in err


def test_tokens(fake, capsys):
    service, _ = fake
    code, token, _ = run(capsys, "1", "tokens", "create", "--role", "annotator", "--name", "al")
    assert code == 0 and token["token"] and token["name"] == "al"
    assert service.requests[-1][2] == {"role": "annotator", "name": "al"}
    code, token2, _ = run(capsys, "1", "tokens", "create", "--role", "viewer")
    assert service.requests[-1][2] == {"role": "viewer"}
    code, listed, _ = run(capsys, "1", "tokens", "list")
    assert [t["name"] for t in listed["items"]] == ["al", "viewer"]
    code, out, _ = run(capsys, "1", "tokens", "revoke", token["id"])
    assert code == 0 and out == {"revoked": token["id"]}
    assert service.requests[-1][:2] == ("DELETE", f"/api/v1/projects/1/tokens/{token['id']}")
    code, _, err = run(capsys, "1", "tokens", "revoke", token["id"])
    assert code == 2 and "409" in err
    code, _, err = run(capsys, "1", "tokens", "revoke", 99)
    assert code == 2 and "404" in err
    for argv in (["tokens", "create", "--role", "root"], ["tokens", "revoke", "x"],
                 ["tokens", "create"], ["tokens"]):
        assert main(["1", *argv]) == 2, argv
